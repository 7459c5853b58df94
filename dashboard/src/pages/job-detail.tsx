import { useRef, useState } from "react";
import { api, unwrap } from "../api/client";
import { FINAL_JOB_STATES, hasRole, JOB_HOST_STATES, type JobView, type Role } from "../api/types";
import { Badge, ErrorNote, Section, Time, useResource } from "../components/ui";
import { useFleetEvents, useRefetchGeneration } from "../live/hooks";
import { Link, useQueryParams } from "../router";

export function JobDetail({ jobId, role }: { jobId: string; role: Role | undefined }) {
  const generation = useRefetchGeneration();
  const [params, setParams] = useQueryParams();
  const stateFilter = params.get("state") ?? "";
  const job = useResource(() => unwrap(api.GET("/api/jobs/{job_id}", { params: { path: { job_id: jobId } } })), [jobId, generation]);
  const hosts = useResource(
    () =>
      unwrap(
        api.GET("/api/jobs/{job_id}/hosts", {
          params: { path: { job_id: jobId }, query: { limit: 200, state: (stateFilter || undefined) as never } },
        }),
      ),
    [jobId, stateFilter, generation],
  );
  const hostsPending = useRef(false);

  useFleetEvents((e) => {
    if (e.type !== "job.progress" || e.job_id !== jobId) return;
    job.set((j) => ({
      ...j,
      state: (e.state as JobView["state"]) ?? j.state,
      counts: e.counts ?? j.counts,
      errors: e.errors ?? j.errors,
      completion: e.completion ?? j.completion,
    }));
    if (e.state && FINAL_JOB_STATES.has(e.state)) job.reload();
    // Per-host rows are not in the event: re-read them, at most twice a second.
    if (!hostsPending.current) {
      hostsPending.current = true;
      setTimeout(() => {
        hostsPending.current = false;
        hosts.reload();
      }, 500);
    }
  });

  const j = job.data;
  return (
    <>
      <p>
        <Link href="/jobs">← Jobs</Link>
      </p>
      <ErrorNote error={job.error} />
      {j && (
        <>
          <h1>
            Job <code>{j.job_id.slice(0, 8)}</code>{" "}
            <span data-testid="job-state">
              <Badge value={j.state} />
            </span>
          </h1>
          <Section
            title="Progress"
            actions={hasRole(role, "operator") && !FINAL_JOB_STATES.has(j.state) ? <CancelJob jobId={jobId} onDone={job.reload} /> : null}
          >
            <div
              className="bar"
              role="progressbar"
              aria-label="Completion"
              aria-valuemin={0}
              aria-valuemax={100}
              aria-valuenow={Math.round(j.completion * 100)}
            >
              <div className="bar-fill" style={{ width: `${j.completion * 100}%` }} />
              <span data-testid="job-completion">{Math.round(j.completion * 100)}%</span>
            </div>
            <p data-testid="job-errors" className={j.max_errors !== null && j.errors > j.max_errors ? "error" : ""}>
              Errors: {j.errors}
              {j.max_errors === null ? " (no limit)" : ` of ${j.max_errors} tolerated`}
              {j.stop_reason && ` — ${j.stop_reason}`}
            </p>
            <ul className="counts" aria-label="Hosts per state">
              {Object.entries(j.counts)
                .filter(([, n]) => n > 0)
                .map(([state, n]) => (
                  <li key={state} data-state={state}>
                    <Badge value={state} /> {n}
                  </li>
                ))}
            </ul>
            <dl className="facts">
              <dt>Command</dt>
              <dd>
                {j.command_type} <code>{JSON.stringify(j.parameters)}</code>
              </dd>
              <dt>Target</dt>
              <dd>
                <code>{JSON.stringify(j.target)}</code> — {j.hosts} hosts, {j.max_concurrency} at a time
              </dd>
              <dt>Started</dt>
              <dd>
                <Time at={j.created_at} /> by {j.created_by}
              </dd>
              <dt>Expires</dt>
              <dd>
                <Time at={j.expires_at} />
              </dd>
              <dt>Finished</dt>
              <dd>
                <Time at={j.finished_at} />
              </dd>
            </dl>
          </Section>
        </>
      )}
      <Section
        title="Hosts"
        actions={
          <label>
            State{" "}
            <select value={stateFilter} onChange={(e) => setParams({ state: e.target.value || null })}>
              <option value="">all</option>
              <option value="failed,timed_out,dead_lettered">errors</option>
              {JOB_HOST_STATES.map((s) => (
                <option key={s} value={s}>
                  {s}
                </option>
              ))}
            </select>
          </label>
        }
      >
        <ErrorNote error={hosts.error} />
        <table className="table" aria-label="Job hosts">
          <thead>
            <tr>
              <th>Host</th>
              <th>State</th>
              <th>Command</th>
              <th>Detail</th>
              <th>Updated</th>
            </tr>
          </thead>
          <tbody>
            {hosts.data?.items.map((h) => (
              <tr key={h.host_id}>
                <td>
                  <Link href={`/hosts/${h.host_id}`}>
                    <code>{h.host_id.slice(0, 8)}</code>
                  </Link>
                </td>
                <td>
                  <Badge value={h.state} />
                </td>
                <td>
                  {h.message_id ? (
                    <Link href={`/hosts/${h.host_id}/commands/${h.message_id}`}>
                      <code>{h.message_id.slice(0, 8)}</code>
                    </Link>
                  ) : (
                    "—"
                  )}
                </td>
                <td>{h.detail ?? h.response_status ?? ""}</td>
                <td>
                  <Time at={h.updated_at} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </Section>
    </>
  );
}

function CancelJob({ jobId, onDone }: { jobId: string; onDone: () => void }) {
  const [abortRunning, setAbortRunning] = useState(false);
  const [error, setError] = useState<unknown>();
  return (
    <div className="confirm">
      <label className="check">
        <input type="checkbox" checked={abortRunning} onChange={(e) => setAbortRunning(e.target.checked)} /> also stop delivered and running
        commands
      </label>
      <button
        type="button"
        className="danger"
        onClick={() =>
          unwrap(
            api.POST("/api/jobs/{job_id}/cancel", { params: { path: { job_id: jobId } }, body: { abort_running: abortRunning } }),
          ).then(onDone, setError)
        }
      >
        Cancel job
      </button>
      <ErrorNote error={error} />
    </div>
  );
}
