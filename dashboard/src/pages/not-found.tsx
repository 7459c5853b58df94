/** A path the dashboard has no screen for. */
export function NotFound({ path }: { path: string }) {
  return (
    <section className="card" aria-label="Not found">
      <h2>Not found</h2>
      <p className="muted">The dashboard has no page at {path}.</p>
    </section>
  );
}
