/**
 * Alerts: what is pending or firing now and what resolved recently, live from `alert.pending`,
 * `alert.firing` and `alert.resolved`; for admins, the rules, the webhook receivers and the deliveries that failed.
 */
import { useState } from "react";
import { api, unwrap } from "../api/client";
import type { AlertHistoryEntry, AlertNotification, Role } from "../api/types";
import { hasRole } from "../api/types";
import { Badge, ErrorNote, Section, Time, useCoalesced, useResource } from "../components/ui";
import { useFleetEvents, useRefetchGeneration } from "../live/hooks";
import { Link } from "../router";
import { AlertReceivers } from "./alert-receivers";
import { AlertRules } from "./alert-rules";

const HISTORY_PAGE = 50;
/** A burst of alert events (many hosts at once) re-reads the list at most this often. */
const EVENT_RELOAD_MS = 300;

/** Labels the table shows in its own columns (name, the host or job it is about). */
const SHOWN_ELSEWHERE = new Set(["alertname", "rule_id", "host_id", "hostname", "job_id"]);

export function LabelList({ labels }: { labels: Record<string, string> }) {
  const entries = Object.entries(labels).filter(([k]) => !SHOWN_ELSEWHERE.has(k));
  if (entries.length === 0) return <span className="muted">—</span>;
  return (
    <span className="labels">
      {entries.map(([k, v]) => (
        <code key={k} className="label">
          {k}={v}
        </code>
      ))}
    </span>
  );
}

/** A host or job the alert is about, as a link. */
function Subject({ labels }: { labels: Record<string, string> }) {
  if (labels.host_id) return <Link href={`/hosts/${labels.host_id}`}>{labels.hostname ?? labels.host_id.slice(0, 8)}</Link>;
  if (labels.job_id) return <Link href={`/jobs/${labels.job_id}`}>job {labels.job_id.slice(0, 8)}</Link>;
  return <span className="muted">fleet</span>;
}

export function Alerts({ role }: { role: Role | undefined }) {
  const generation = useRefetchGeneration();
  const alerts = useResource(() => unwrap(api.GET("/api/alerts", { params: { query: { history_limit: HISTORY_PAGE } } })), [generation]);
  const [older, setOlder] = useState<AlertHistoryEntry[]>([]);
  const [olderDone, setOlderDone] = useState(false);
  const [olderError, setOlderError] = useState<unknown>();
  const admin = hasRole(role, "admin");
  // A notification that failed is worth a look right after the alert that caused it.
  const failed = useResource(
    () =>
      admin
        ? unwrap(api.GET("/api/alert-notifications", { params: { query: { state: "failed", limit: 50 } } }))
        : Promise.resolve({ items: [] as AlertNotification[] }),
    [admin, generation],
  );

  // The event carries the alert but not the history row's id or pending peers: re-read the list.
  const reloadAlerts = useCoalesced(alerts.reload, EVENT_RELOAD_MS);
  const reloadFailed = useCoalesced(failed.reload, EVENT_RELOAD_MS);
  useFleetEvents((e) => {
    if (!e.type.startsWith("alert.")) return;
    reloadAlerts();
    if (admin) reloadFailed();
  });

  const history = [...(alerts.data?.history ?? []), ...older.filter((o) => !alerts.data?.history.some((h) => h.id === o.id))];
  const loadOlder = async () => {
    const last = history.at(-1);
    if (!last) return;
    setOlderError(undefined);
    try {
      const page = await unwrap(api.GET("/api/alerts", { params: { query: { history_limit: HISTORY_PAGE, history_before: last.id } } }));
      setOlder((o) => [...o, ...page.history]);
      if (page.history.length < HISTORY_PAGE) setOlderDone(true);
    } catch (err) {
      setOlderError(err);
    }
  };

  const active = alerts.data?.active ?? [];
  return (
    <>
      <h1>Alerts</h1>
      <Section title="Active alerts">
        <ErrorNote error={alerts.error} />
        <table className="table" aria-label="Active alerts">
          <thead>
            <tr>
              <th>State</th>
              <th>Alert</th>
              <th>About</th>
              <th>Labels</th>
              <th>Since</th>
              <th>Summary</th>
            </tr>
          </thead>
          <tbody>
            {active.map((a) => (
              <tr key={a.fingerprint} data-fingerprint={a.fingerprint} data-alertname={a.labels.alertname}>
                <td>
                  <Badge value={a.state} />
                </td>
                <td>{a.labels.alertname}</td>
                <td>
                  <Subject labels={a.labels} />
                </td>
                <td>
                  <LabelList labels={a.labels} />
                </td>
                <td>
                  <Time at={a.fired_at ?? a.active_since} />
                </td>
                <td>{a.annotations.summary ?? ""}</td>
              </tr>
            ))}
          </tbody>
        </table>
        {alerts.data && active.length === 0 && <p className="muted">Nothing firing.</p>}
      </Section>
      <Section title="Recently resolved">
        <table className="table" aria-label="Resolved alerts">
          <thead>
            <tr>
              <th>Alert</th>
              <th>About</th>
              <th>Fired</th>
              <th>Resolved</th>
              <th>Summary</th>
            </tr>
          </thead>
          <tbody>
            {history.map((h) => (
              <tr key={h.id} data-fingerprint={h.fingerprint}>
                <td>{h.labels.alertname}</td>
                <td>
                  <Subject labels={h.labels} />
                </td>
                <td>
                  <Time at={h.fired_at} />
                </td>
                <td>
                  <Time at={h.resolved_at} />
                </td>
                <td>{h.annotations.summary ?? ""}</td>
              </tr>
            ))}
          </tbody>
        </table>
        {alerts.data && history.length === 0 && <p className="muted">No resolved alerts kept.</p>}
        {history.length >= HISTORY_PAGE && !olderDone && (
          <button type="button" onClick={() => void loadOlder()}>
            Older
          </button>
        )}
        <ErrorNote error={olderError} />
      </Section>
      {admin && (
        <>
          <AlertRules />
          <AlertReceivers />
          <Section title="Failed notifications">
            <ErrorNote error={failed.error} />
            <table className="table" aria-label="Failed notifications">
              <thead>
                <tr>
                  <th>Status</th>
                  <th>Receiver</th>
                  <th>Attempts</th>
                  <th>Created</th>
                  <th>Gave up</th>
                  <th>Last error</th>
                </tr>
              </thead>
              <tbody>
                {failed.data?.items.map((n) => (
                  <tr key={`${n.notification_id}-${n.receiver_id}`}>
                    <td>
                      <Badge value={n.status} />
                    </td>
                    <td>
                      <code>{n.receiver_id.slice(0, 8)}</code>
                    </td>
                    <td>{n.attempts}</td>
                    <td>
                      <Time at={n.created_at} />
                    </td>
                    <td>
                      <Time at={n.finished_at} />
                    </td>
                    <td className="error">{n.last_error ?? ""}</td>
                  </tr>
                ))}
              </tbody>
            </table>
            {failed.data?.items.length === 0 && <p className="muted">No notification has failed.</p>}
          </Section>
        </>
      )}
    </>
  );
}
