import { useRef, useState } from "react";
import { api, unwrap } from "../api/client";
import { COMMAND_STATES, type CommandSummary, hasRole, type Role } from "../api/types";
import { Badge, ErrorNote, Section, Time, useResource } from "../components/ui";
import { useFleetEvents, useRefetchGeneration } from "../live/hooks";
import { Link, useQueryParams } from "../router";
import { CommandForms } from "./command-forms";

const ACTIVE = "queued,delivered,running,cancelling";

export function HostDetail({ hostId, role }: { hostId: string; role: Role | undefined }) {
  const generation = useRefetchGeneration();
  const [params, setParams] = useQueryParams();
  const stateFilter = params.get("state") ?? "";
  const host = useResource(() => unwrap(api.GET("/api/hosts/{host_id}", { params: { path: { host_id: hostId } } })), [hostId, generation]);
  const commands = useResource(
    () =>
      unwrap(
        api.GET("/api/hosts/{host_id}/commands", {
          params: { path: { host_id: hostId }, query: { limit: 100, state: (stateFilter || undefined) as never } },
        }),
      ),
    [hostId, stateFilter, generation],
  );
  const deadLetters = useResource(
    () => unwrap(api.GET("/api/hosts/{host_id}/dead-letters", { params: { path: { host_id: hostId }, query: { limit: 100 } } })),
    [hostId, generation],
  );

  // A command this list has not seen (sent from elsewhere): reload, at most once per half second.
  const pending = useRef(new Set<string>());
  const reloadSoon = (key: string, fn: () => void) => {
    if (pending.current.has(key)) return;
    pending.current.add(key);
    setTimeout(() => {
      pending.current.delete(key);
      fn();
    }, 500);
  };

  useFleetEvents((e) => {
    if (e.host_id !== hostId) return;
    if (e.type === "host.online" || e.type === "host.offline") {
      const status = e.type === "host.online" ? "online" : "offline";
      host.set((h) => (h.status === "revoked" ? h : { ...h, status, last_seen_at: e.at }));
      if (e.type === "host.online") host.reload(); // the agent's hello may have changed its facts
      return;
    }
    if (e.type !== "command.state" || !e.message_id || !e.state) return;
    const state = e.state as CommandSummary["state"];
    const known = commands.data?.items.some((c) => c.message_id === e.message_id);
    if (known) {
      commands.set((page) => ({
        ...page,
        items: page.items
          .map((c) =>
            c.message_id === e.message_id
              ? { ...c, state, updated_at: e.at, attempts: Math.max(c.attempts, e.attempt ?? 0), liveAt: e.at }
              : c,
          )
          .filter((c) => !stateFilter || stateFilter.split(",").includes(c.state)),
      }));
    } else if (!stateFilter || stateFilter.split(",").includes(state)) {
      reloadSoon("commands", commands.reload);
    }
    if (state === "dead_lettered" || deadLetters.data?.items.some((d) => d.message_id === e.message_id))
      reloadSoon("dead-letters", deadLetters.reload);
    reloadSoon("host", host.reload); // queue depth
  });

  const h = host.data;
  const operator = hasRole(role, "operator");
  return (
    <>
      <p>
        <Link href="/hosts">← Hosts</Link>
      </p>
      <ErrorNote error={host.error} />
      {h && (
        <>
          <h1>
            {h.hostname} <Badge value={h.status} />
          </h1>
          <Section
            title="Agent"
            actions={hasRole(role, "admin") && h.status !== "revoked" ? <Revoke hostId={hostId} onDone={host.reload} /> : null}
          >
            <dl className="facts">
              <dt>Host id</dt>
              <dd>
                <code>{h.host_id}</code>
              </dd>
              <dt>Last seen</dt>
              <dd>
                <Time at={h.last_seen_at} />
              </dd>
              <dt>Connected</dt>
              <dd>
                <Time at={h.connected_at} />
              </dd>
              <dt>Tags</dt>
              <dd>{h.tags.join(", ") || "—"}</dd>
              <dt>Queue depth</dt>
              <dd data-testid="queue-depth">{h.queue_depth ?? "—"}</dd>
              <dt>Agent version</dt>
              <dd>{h.agent?.agent_version ?? "— (never connected)"}</dd>
              <dt>Protocol</dt>
              <dd>{h.agent?.protocol_version ?? "—"}</dd>
              <dt>OS</dt>
              <dd>
                {h.agent ? [h.agent.os.name, h.agent.os.version, h.agent.os.arch, h.agent.os.kernel].filter(Boolean).join(" · ") : "—"}
              </dd>
              <dt>Commands it runs</dt>
              <dd>{h.agent?.supported_commands.join(", ") ?? "—"}</dd>
            </dl>
          </Section>
          {operator && h.status !== "revoked" && (
            <Section title="Send a command">
              <CommandForms host={h} />
            </Section>
          )}
        </>
      )}
      <Section
        title="Commands"
        actions={
          <label>
            State{" "}
            <select value={stateFilter} onChange={(e) => setParams({ state: e.target.value || null })}>
              <option value="">all</option>
              <option value={ACTIVE}>active</option>
              {COMMAND_STATES.map((s) => (
                <option key={s} value={s}>
                  {s}
                </option>
              ))}
            </select>
          </label>
        }
      >
        <ErrorNote error={commands.error} />
        <table className="table" aria-label="Commands">
          <thead>
            <tr>
              <th>Command</th>
              <th>Type</th>
              <th>State</th>
              <th>Attempts</th>
              <th>Updated</th>
            </tr>
          </thead>
          <tbody>
            {commands.data?.items.map((c) => (
              <tr key={c.message_id} data-message-id={c.message_id} data-event-at={(c as { liveAt?: string }).liveAt}>
                <td>
                  <Link href={`/hosts/${hostId}/commands/${c.message_id}`}>
                    <code>{c.message_id.slice(0, 8)}</code>
                  </Link>
                </td>
                <td>{c.command_type}</td>
                <td data-testid="command-state">
                  <Badge value={c.state} />
                </td>
                <td>
                  {c.attempts}/{c.max_attempts}
                </td>
                <td>
                  <Time at={c.updated_at} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        {commands.data?.items.length === 0 && <p className="muted">No commands{stateFilter ? " in this state" : ""}.</p>}
      </Section>
      <Section title="Dead letters">
        <ErrorNote error={deadLetters.error} />
        {deadLetters.data?.items.length ? (
          <table className="table" aria-label="Dead letters">
            <thead>
              <tr>
                <th>Command</th>
                <th>Type</th>
                <th>Attempts</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {deadLetters.data.items.map((d) => (
                <tr key={d.message_id}>
                  <td>
                    <Link href={`/hosts/${hostId}/commands/${d.message_id}`}>
                      <code>{d.message_id.slice(0, 8)}</code>
                    </Link>
                  </td>
                  <td>{d.command_type}</td>
                  <td>{d.attempts}</td>
                  <td>{operator && <Requeue hostId={hostId} messageId={d.message_id} onDone={deadLetters.reload} />}</td>
                </tr>
              ))}
            </tbody>
          </table>
        ) : (
          <p className="muted">None.</p>
        )}
      </Section>
    </>
  );
}

function Requeue({ hostId, messageId, onDone }: { hostId: string; messageId: string; onDone: () => void }) {
  const [error, setError] = useState<unknown>();
  return (
    <>
      <button
        type="button"
        onClick={() =>
          unwrap(
            api.POST("/api/hosts/{host_id}/dead-letters/{message_id}/requeue", {
              params: { path: { host_id: hostId, message_id: messageId } },
              body: {},
            }),
          ).then(onDone, setError)
        }
      >
        Requeue
      </button>
      <ErrorNote error={error} />
    </>
  );
}

function Revoke({ hostId, onDone }: { hostId: string; onDone: () => void }) {
  const [confirming, setConfirming] = useState(false);
  const [error, setError] = useState<unknown>();
  if (!confirming) {
    return (
      <button type="button" className="danger" onClick={() => setConfirming(true)}>
        Revoke…
      </button>
    );
  }
  return (
    <div role="alertdialog" aria-label="Confirm revocation" className="confirm">
      <span>Disconnect this host's agent now and refuse it from now on? Its queued commands are cancelled.</span>
      <button
        type="button"
        className="danger"
        onClick={() => unwrap(api.POST("/api/hosts/{host_id}/revoke", { params: { path: { host_id: hostId } } })).then(onDone, setError)}
      >
        Revoke host
      </button>
      <button type="button" onClick={() => setConfirming(false)}>
        Keep it
      </button>
      <ErrorNote error={error} />
    </div>
  );
}
