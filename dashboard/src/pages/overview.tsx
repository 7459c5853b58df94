import { api, unwrap } from "../api/client";
import type { HostStatus } from "../api/types";
import { Section, useResource } from "../components/ui";
import { useFleetEvents, useRefetchGeneration } from "../live/hooks";
import { Link } from "../router";

/** Pages walked for the counts (500 hosts each): 20,000 hosts; past that the counts say "at least". */
const MAX_PAGES = 40;

async function hostStatuses(): Promise<{ statuses: Map<string, HostStatus>; complete: boolean }> {
  const statuses = new Map<string, HostStatus>();
  let cursor: string | undefined;
  for (let i = 0; i < MAX_PAGES; i++) {
    const page = await unwrap(api.GET("/api/hosts", { params: { query: { limit: 500, cursor } } }));
    for (const h of page.items) statuses.set(h.host_id, h.status);
    if (!page.next_cursor) return { statuses, complete: true };
    cursor = page.next_cursor;
  }
  return { statuses, complete: false };
}

export function Overview() {
  const generation = useRefetchGeneration();
  const hosts = useResource(hostStatuses, [generation]);
  useFleetEvents((e) => {
    if ((e.type !== "host.online" && e.type !== "host.offline") || !e.host_id) return;
    const hostId = e.host_id;
    hosts.set((prev) => {
      const statuses = new Map(prev.statuses);
      if (statuses.get(hostId) !== "revoked") statuses.set(hostId, e.type === "host.online" ? "online" : "offline");
      return { ...prev, statuses };
    });
  });
  const counts = { online: 0, offline: 0, revoked: 0 };
  for (const s of hosts.data?.statuses.values() ?? []) counts[s]++;
  const prefix = hosts.data && !hosts.data.complete ? "≥ " : "";
  return (
    <>
      <h1>Fleet overview</h1>
      <div className="tiles">
        {(["online", "offline", "revoked"] as const).map((s) => (
          <Link key={s} href={`/hosts?status=${s}`} className={`tile tile-${s}`} aria-label={`${s} hosts`}>
            <span className="tile-value" data-testid={`count-${s}`}>
              {hosts.data ? `${prefix}${counts[s]}` : "…"}
            </span>
            <span className="tile-label">hosts {s}</span>
          </Link>
        ))}
        <div className="tile tile-muted">
          <span className="tile-value">—</span>
          <span className="tile-label">queue depth (needs /api/metrics)</span>
        </div>
        <div className="tile tile-muted">
          <span className="tile-value">—</span>
          <span className="tile-label">dead letters (needs /api/metrics)</span>
        </div>
      </div>
      <Section title="Commands per state, last hour">
        <p className="muted">Charts arrive with the metrics API (issue 9).</p>
      </Section>
      <Section title="Delivery latency, last hour">
        <p className="muted">Charts arrive with the metrics API (issue 9).</p>
      </Section>
      <Section title="Active alerts">
        <p className="muted">Alerts arrive with the alerting API (issue 9).</p>
      </Section>
    </>
  );
}
