import { useRef, useState } from "react";
import { api, unwrap } from "../api/client";
import { type CommandView as Command, hasRole, type Role, type StateChange, TERMINAL_STATES } from "../api/types";
import { Badge, ErrorNote, Section, Time, useResource } from "../components/ui";
import { useFleetEvents, useRefetchGeneration } from "../live/hooks";
import { Link } from "../router";

/** A loaded command plus what the event stream added since: transitions, and output chunks past `output_seq`. */
interface Live extends Command {
  liveHistory: (StateChange & { live: true })[];
}

export function CommandPage({ hostId, messageId, role }: { hostId: string; messageId: string; role: Role | undefined }) {
  const generation = useRefetchGeneration();
  const command = useResource<Live>(
    () =>
      unwrap(api.GET("/api/hosts/{host_id}/commands/{message_id}", { params: { path: { host_id: hostId, message_id: messageId } } })).then(
        (c) => ({ ...c, liveHistory: [] }),
      ),
    [hostId, messageId, generation],
  );
  const reloading = useRef(false);
  const reload = () => {
    if (reloading.current) return;
    reloading.current = true;
    setTimeout(() => {
      reloading.current = false;
      command.reload();
    }, 200);
  };

  useFleetEvents((e) => {
    if (e.message_id !== messageId) return;
    if (e.type === "command.state" && e.state) {
      const state = e.state as Command["state"];
      command.set((c) => {
        // Already in the loaded history (the event was published after GET read it).
        if (c.history.some((h) => h.state === state && h.at === e.at)) return c;
        const change = { state, at: e.at, attempt: e.attempt ?? null, detail: e.detail ?? null, live: true as const };
        return { ...c, state, updated_at: e.at, attempts: Math.max(c.attempts, e.attempt ?? 0), liveHistory: [...c.liveHistory, change] };
      });
      // The result (and all of the output) comes with the final state: read it.
      if (TERMINAL_STATES.has(state)) reload();
    } else if (e.type === "command.output" && e.output !== undefined) {
      const seq = e.seq ?? null;
      const held = command.data?.output_seq ?? null;
      // At or below what GET held: it may already be in `output`. GET again rather than guess.
      if (seq !== null && held !== null && seq <= held) {
        reload();
        return;
      }
      const chunk = e.output;
      command.set((c) => ({ ...c, output: c.output + chunk, output_seq: seq ?? c.output_seq }));
    }
  });

  const c = command.data;
  const [cancelError, setCancelError] = useState<unknown>();
  const [cancelAnswer, setCancelAnswer] = useState<string | null>(null);
  const cancel = async () => {
    setCancelError(undefined);
    try {
      const { data, error, response } = await api.DELETE("/api/hosts/{host_id}/commands/{message_id}", {
        params: { path: { host_id: hostId, message_id: messageId } },
      });
      if (error || !response.ok) throw Object.assign(new Error((error as { detail?: string })?.detail ?? `HTTP ${response.status}`));
      setCancelAnswer(
        response.status === 202
          ? "cancelling: the agent may hold it; its answer decides the final state"
          : `cancelled: it was never sent (${(data as { state?: string })?.state ?? ""})`,
      );
      command.reload();
    } catch (err) {
      setCancelError(err);
    }
  };

  const history = c ? [...c.history, ...c.liveHistory] : [];
  return (
    <>
      <p>
        <Link href={`/hosts/${hostId}`}>← Host</Link>
      </p>
      <ErrorNote error={command.error} />
      {c && (
        <>
          <h1>
            {c.command_type} <code>{c.message_id.slice(0, 8)}</code>{" "}
            <span data-testid="command-state">
              <Badge value={c.state} />
            </span>
          </h1>
          <Section
            title="Command"
            actions={
              hasRole(role, "operator") && !TERMINAL_STATES.has(c.state) ? (
                <button type="button" className="danger" onClick={() => void cancel()}>
                  Cancel
                </button>
              ) : null
            }
          >
            {cancelAnswer && (
              <p className="notice" role="status">
                {cancelAnswer}
              </p>
            )}
            {c.state === "cancelling" && (
              <p className="notice">
                Cancelling: a cancel was sent to the agent, which may already hold the command. The state it reports decides the end
                (cancelled, or what it finished with).
              </p>
            )}
            <ErrorNote error={cancelError} />
            <dl className="facts">
              <dt>Attempts</dt>
              <dd data-testid="attempts">
                {c.attempts} of {c.max_attempts}
              </dd>
              <dt>Created</dt>
              <dd>
                <Time at={c.created_at} />
              </dd>
              <dt>Last attempt</dt>
              <dd>
                <Time at={c.last_attempt_at} />
              </dd>
              <dt>Delivery deadline</dt>
              <dd>
                <Time at={c.expires_at} />
              </dd>
              <dt>Timeout</dt>
              <dd>{c.timeout} s</dd>
              <dt>Parameters</dt>
              <dd>
                <code>{JSON.stringify(c.parameters)}</code>
              </dd>
            </dl>
          </Section>
          <Section title="Timeline">
            <ol className="timeline" aria-label="State timeline">
              {history.map((h) => (
                <li
                  key={`${h.state}-${h.at}-${h.attempt}-${h.detail}`}
                  data-state={h.state}
                  {...("live" in h ? { "data-event-at": h.at } : {})}
                >
                  <Badge value={h.state} /> <Time at={h.at} />
                  {h.attempt !== null && <span className="muted"> attempt {h.attempt}</span>}
                  {h.detail && <span className="muted"> — {h.detail}</span>}
                </li>
              ))}
            </ol>
          </Section>
          <Section title="Output">
            <pre className="output" data-testid="output" aria-live="polite">
              {c.output || (c.result as { output?: string } | null)?.output || ""}
            </pre>
          </Section>
          {c.result && (
            <Section title="Result">
              <pre className="output" data-testid="result">
                {JSON.stringify(c.result, null, 2)}
              </pre>
            </Section>
          )}
        </>
      )}
    </>
  );
}
