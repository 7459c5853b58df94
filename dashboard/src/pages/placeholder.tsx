/** Screens that need the observability work (issue 9: metrics, alerts, audit); the navigation is ready for them. */
export function Placeholder({ title, needs }: { title: string; needs: string }) {
  return (
    <section className="card" aria-label={title}>
      <h2>{title}</h2>
      <p className="muted">Not available yet: this screen needs {needs}.</p>
    </section>
  );
}
