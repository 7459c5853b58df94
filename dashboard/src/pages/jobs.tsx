import { type FormEvent, useState } from "react";
import { api, unwrap } from "../api/client";
import { hasRole, type JobRequest, type Role } from "../api/types";
import { ErrorNote, FieldError, Section, Time, useResource } from "../components/ui";
import { useFleetEvents, useRefetchGeneration } from "../live/hooks";
import { Link, navigate } from "../router";

export function Jobs({ role }: { role: Role | undefined }) {
  const generation = useRefetchGeneration();
  const jobs = useResource(() => unwrap(api.GET("/api/jobs", { params: { query: { limit: 100 } } })), [generation]);
  useFleetEvents((e) => {
    // A job this list does not show yet (started elsewhere): reload.
    if (e.type === "job.progress" && e.job_id && !jobs.data?.items.some((j) => j.job_id === e.job_id)) jobs.reload();
  });
  return (
    <>
      <h1>Jobs</h1>
      {hasRole(role, "operator") && (
        <Section title="New job">
          <CreateJob />
        </Section>
      )}
      <Section title="Recent jobs">
        <ErrorNote error={jobs.error} />
        <table className="table" aria-label="Jobs">
          <thead>
            <tr>
              <th>Job</th>
              <th>Command</th>
              <th>Hosts</th>
              <th>By</th>
              <th>Created</th>
            </tr>
          </thead>
          <tbody>
            {jobs.data?.items.map((j) => (
              <tr key={j.job_id}>
                <td>
                  <Link href={`/jobs/${j.job_id}`}>
                    <code>{j.job_id.slice(0, 8)}</code>
                  </Link>
                </td>
                <td>{j.command_type}</td>
                <td>{j.host_count}</td>
                <td>{j.created_by}</td>
                <td>
                  <Time at={j.created_at} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        {jobs.data?.items.length === 0 && <p className="muted">No jobs yet.</p>}
      </Section>
    </>
  );
}

type TargetKind = "tags" | "host_ids" | "all";

function CreateJob() {
  const [kind, setKind] = useState<TargetKind>("tags");
  const [tags, setTags] = useState("");
  const [matchAll, setMatchAll] = useState(false);
  const [hostIds, setHostIds] = useState("");
  const [operation, setOperation] = useState<"install" | "remove" | "update" | "upgrade" | "system_info">("install");
  const [packages, setPackages] = useState("");
  const [simulate, setSimulate] = useState(true);
  const [concurrency, setConcurrency] = useState("");
  const [maxErrors, setMaxErrors] = useState("");
  const [expiresIn, setExpiresIn] = useState("3600");
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);

  const countOrPercent = (v: string) => (v.trim() === "" ? undefined : /%$/.test(v.trim()) ? v.trim() : Number(v));
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const list = (s: string) => s.split(/[\s,]+/).filter(Boolean);
    const target: JobRequest["target"] =
      kind === "all"
        ? { all: true }
        : kind === "tags"
          ? { tags: list(tags), match: matchAll ? "all" : "any" }
          : { host_ids: list(hostIds) };
    const command =
      operation === "system_info"
        ? ({ command_type: "system_info", parameters: {} } as const)
        : ({
            command_type: "package_operation",
            parameters: { operation, packages: list(packages), options: { yes: true, simulate } },
          } as const);
    const body = {
      ...command,
      target,
      max_concurrency: countOrPercent(concurrency),
      max_errors: countOrPercent(maxErrors),
      expires_in: expiresIn ? Number(expiresIn) : undefined,
    } as JobRequest;
    setBusy(true);
    setError(undefined);
    try {
      const accepted = await unwrap(api.POST("/api/jobs", { body }));
      navigate(`/jobs/${accepted.job_id}`);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <form onSubmit={submit} aria-label="New job" className="forms">
      <fieldset className="form-row">
        <legend>Target</legend>
        {(["tags", "host_ids", "all"] as const).map((k) => (
          <label key={k} className="check">
            <input type="radio" name="target" checked={kind === k} onChange={() => setKind(k)} />{" "}
            {k === "tags" ? "by tags" : k === "host_ids" ? "host list" : "all hosts"}
          </label>
        ))}
        {kind === "tags" && (
          <>
            <label className="grow">
              Tags
              <input value={tags} onChange={(e) => setTags(e.target.value)} placeholder="web,prod" />
            </label>
            <label className="check">
              <input type="checkbox" checked={matchAll} onChange={(e) => setMatchAll(e.target.checked)} /> must have all
            </label>
          </>
        )}
        {kind === "host_ids" && (
          <label className="grow">
            Host ids
            <textarea rows={2} value={hostIds} onChange={(e) => setHostIds(e.target.value)} />
          </label>
        )}
        <FieldError error={error} field="target" />
      </fieldset>
      <div className="form-row">
        <label>
          Command
          <select value={operation} onChange={(e) => setOperation(e.target.value as typeof operation)}>
            <option value="install">install</option>
            <option value="remove">remove</option>
            <option value="update">update</option>
            <option value="upgrade">upgrade</option>
            <option value="system_info">system_info</option>
          </select>
        </label>
        {operation !== "system_info" && (
          <>
            <label className="grow">
              Packages
              <input value={packages} onChange={(e) => setPackages(e.target.value)} placeholder="nginx curl" />
              <FieldError error={error} field="parameters.packages" />
            </label>
            <label className="check">
              <input type="checkbox" checked={simulate} onChange={(e) => setSimulate(e.target.checked)} /> simulate
            </label>
          </>
        )}
      </div>
      <div className="form-row">
        <label>
          Max concurrency
          <input value={concurrency} onChange={(e) => setConcurrency(e.target.value)} placeholder="all, 10 or 25%" size={8} />
          <FieldError error={error} field="max_concurrency" />
        </label>
        <label>
          Max errors
          <input value={maxErrors} onChange={(e) => setMaxErrors(e.target.value)} placeholder="no limit" size={8} />
          <FieldError error={error} field="max_errors" />
        </label>
        <label>
          Expires in (s)
          <input value={expiresIn} onChange={(e) => setExpiresIn(e.target.value)} inputMode="numeric" size={8} />
          <FieldError error={error} field="expires_in" />
        </label>
        <button type="submit" disabled={busy}>
          Start job
        </button>
      </div>
      <ErrorNote error={error} />
    </form>
  );
}
