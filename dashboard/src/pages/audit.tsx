/**
 * The audit trail (admin): records newest first with filters in the URL and cursor pages, the
 * NDJSON export as a download, and the chain verified in this browser — the same pure verifier as
 * `npm run audit-verify` (worker/audit-log/verify.ts, WebCrypto only) over a fresh export and the
 * relay's public key, so the page does not take the relay's word for it.
 */
import { type FormEvent, useState } from "react";
import type { VerifyResult } from "../../../worker/audit-log/verify.ts";
import { api, unwrap } from "../api/client";
import { type AuditFilter, type AuditRecord, hasRole, type Role } from "../api/types";
import { getToken } from "../auth";
import { ErrorNote, FieldError, Section, Time, useResource } from "../components/ui";
import { useRefetchGeneration } from "../live/hooks";
import { Link, useQueryParams } from "../router";

const FILTERS = ["actor", "action", "host_id", "job_id", "since", "until"] as const;
type FilterKey = (typeof FILTERS)[number];
const PAGE = 50;

/** `datetime-local` shows local time without a zone; the URL and the API hold RFC 3339 UTC. */
function toLocalInput(iso: string | null): string {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  return new Date(d.getTime() - d.getTimezoneOffset() * 60_000).toISOString().slice(0, 16);
}
const fromLocalInput = (v: string): string | null => (v ? new Date(v).toISOString() : null);

/** The export, fetched with the token: a plain link could not carry the Authorization header. */
async function fetchExport(): Promise<string> {
  const token = getToken();
  const res = await fetch("/api/audit/export", { headers: token ? { authorization: `Bearer ${token}` } : {} });
  if (!res.ok) throw new Error(`export: HTTP ${res.status} ${await res.text().catch(() => "")}`);
  return res.text();
}

function download(text: string, name: string): void {
  const url = URL.createObjectURL(new Blob([text], { type: "application/x-ndjson" }));
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export function Audit({ role }: { role: Role | undefined }) {
  if (!hasRole(role, "admin")) {
    return (
      <>
        <h1>Audit</h1>
        <p className="muted">The audit trail is for admins.</p>
      </>
    );
  }
  return <AuditViewer />;
}

function AuditViewer() {
  const generation = useRefetchGeneration();
  const [params, setParams] = useQueryParams();
  const filter: AuditFilter = { limit: PAGE };
  for (const k of FILTERS) {
    const v = params.get(k);
    if (v) filter[k] = v;
  }
  const cursor = params.get("cursor");
  if (cursor) filter.cursor = cursor;
  const key = JSON.stringify(filter);
  const page = useResource(() => unwrap(api.GET("/api/audit", { params: { query: filter } })), [key, generation]);
  // Cursors of the pages before this one, for "Newer"; a fresh filter starts over.
  const [back, setBack] = useState<string[]>([]);

  return (
    <>
      <h1>Audit</h1>
      <AuditFilters
        key={FILTERS.map((k) => params.get(k) ?? "").join("|")}
        params={params}
        error={page.error}
        onApply={(values) => {
          setBack([]);
          setParams({ ...values, cursor: null });
        }}
      />
      <Section
        title="Records"
        actions={
          <span className="pager">
            <button
              type="button"
              disabled={back.length === 0 && !cursor}
              onClick={() => {
                const prev = back.at(-1) ?? null;
                setBack((b) => b.slice(0, -1));
                setParams({ cursor: prev });
              }}
            >
              ← Newer
            </button>
            <button
              type="button"
              disabled={!page.data?.next_cursor}
              onClick={() => {
                setBack((b) => [...b, cursor ?? ""]);
                setParams({ cursor: page.data?.next_cursor ?? null });
              }}
            >
              Older →
            </button>
          </span>
        }
      >
        <ErrorNote error={page.error} />
        <table className="table" aria-label="Audit records">
          <thead>
            <tr>
              <th>Time</th>
              <th>Action</th>
              <th>Actor</th>
              <th>Target</th>
              <th>Outcome</th>
              <th>Shard · seq</th>
            </tr>
          </thead>
          <tbody>
            {page.data?.items.map((r) => (
              <AuditRow key={r.id} r={r} />
            ))}
          </tbody>
        </table>
        {page.data?.items.length === 0 && <p className="muted">No records match.</p>}
      </Section>
      <ExportAndVerify />
    </>
  );
}

function AuditRow({ r }: { r: AuditRecord }) {
  const t = r.target;
  return (
    <tr data-action={r.action} data-message-id={t.message_id ?? undefined}>
      <td>
        <Time at={r.time} />
      </td>
      <td>
        <code>{r.action}</code>
      </td>
      <td>
        {r.actor.sub ?? <span className="muted">{r.actor.kind}</span>}
        {r.actor.role && <span className="muted"> ({r.actor.role})</span>}
      </td>
      <td>
        {t.host_id && (
          <Link href={t.message_id ? `/hosts/${t.host_id}/commands/${t.message_id}` : `/hosts/${t.host_id}`}>
            host {t.host_id.slice(0, 8)}
            {t.message_id && ` · ${t.message_id.slice(0, 8)}`}
          </Link>
        )}
        {t.job_id && <Link href={`/jobs/${t.job_id}`}> job {t.job_id.slice(0, 8)}</Link>}
        {t.rule_id && <span> rule {t.rule_id.slice(0, 8)}</span>}
        {t.receiver_id && <span> receiver {t.receiver_id.slice(0, 8)}</span>}
      </td>
      <td>
        {r.outcome.status ?? ""} {r.outcome.code && <code>{r.outcome.code}</code>}
      </td>
      <td>
        {r.shard} · {r.seq}
      </td>
    </tr>
  );
}

function AuditFilters({
  params,
  error,
  onApply,
}: {
  params: URLSearchParams;
  error: unknown;
  onApply: (values: Record<FilterKey, string | null>) => void;
}) {
  const [v, setV] = useState<Record<FilterKey, string>>(() => ({
    actor: params.get("actor") ?? "",
    action: params.get("action") ?? "",
    host_id: params.get("host_id") ?? "",
    job_id: params.get("job_id") ?? "",
    since: toLocalInput(params.get("since")),
    until: toLocalInput(params.get("until")),
  }));
  const submit = (e: FormEvent) => {
    e.preventDefault();
    onApply({
      actor: v.actor.trim() || null,
      action: v.action.trim() || null,
      host_id: v.host_id.trim() || null,
      job_id: v.job_id.trim() || null,
      since: fromLocalInput(v.since),
      until: fromLocalInput(v.until),
    });
  };
  const field = (k: FilterKey, label: string, type = "text", placeholder?: string) => (
    <label>
      {label}
      <input type={type} value={v[k]} placeholder={placeholder} onChange={(e) => setV((p) => ({ ...p, [k]: e.target.value }))} />
      <FieldError error={error} field={k} />
    </label>
  );
  return (
    <Section title="Filters">
      <form onSubmit={submit} aria-label="Audit filters" className="form-row">
        {field("actor", "Actor", "text", "sub")}
        {field("action", "Action", "text", "command.create")}
        {field("host_id", "Host id")}
        {field("job_id", "Job id")}
        {field("since", "Since", "datetime-local")}
        {field("until", "Until", "datetime-local")}
        <button type="submit">Apply</button>
      </form>
    </Section>
  );
}

function ExportAndVerify() {
  const [busy, setBusy] = useState<"export" | "verify" | null>(null);
  const [error, setError] = useState<unknown>();
  const [result, setResult] = useState<VerifyResult | null>(null);
  const stamp = () => new Date().toISOString().replace(/[:.]/g, "-");

  const doExport = async () => {
    setBusy("export");
    setError(undefined);
    try {
      download(await fetchExport(), `audit-${stamp()}.ndjson`);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(null);
    }
  };

  const doVerify = async () => {
    setBusy("verify");
    setError(undefined);
    setResult(null);
    try {
      // The verifier loads on first use: only admins who verify download it.
      const [text, pub, { verifyExport }, { importPublicKey }] = await Promise.all([
        fetchExport(),
        unwrap(api.GET("/api/audit/public-key")),
        import("../../../worker/audit-log/verify.ts"),
        import("../../../worker/audit-log/signing.ts"),
      ]);
      setResult(await verifyExport(text, await importPublicKey(pub.public_key)));
    } catch (err) {
      setError(err);
    } finally {
      setBusy(null);
    }
  };

  return (
    <Section
      title="Export and verification"
      actions={
        <span className="pager">
          <button type="button" disabled={busy !== null} onClick={() => void doExport()}>
            {busy === "export" ? "Exporting…" : "Export NDJSON"}
          </button>
          <button type="button" disabled={busy !== null} onClick={() => void doVerify()}>
            {busy === "verify" ? "Verifying…" : "Verify chain"}
          </button>
        </span>
      }
    >
      <p className="muted">
        Verification runs here, in the browser: it fetches a fresh export and the public key, recomputes every shard's hash chain and checks
        every signed checkpoint (as <code>npm run audit-verify</code> does).
      </p>
      <ErrorNote error={error} />
      {result && <VerifyOutcome result={result} />}
    </Section>
  );
}

function VerifyOutcome({ result }: { result: VerifyResult }) {
  if (!result.ok) {
    return (
      <p className="error" role="alert" data-testid="verify-result" data-ok="false">
        FAILED{result.shard !== null && ` at shard ${result.shard}`}
        {result.seq !== null && ` seq ${result.seq}`} (line {result.line}): {result.reason}
      </p>
    );
  }
  const records = result.shards.reduce((n, s) => n + s.records, 0);
  const checkpoints = result.shards.reduce((n, s) => n + s.checkpoints, 0);
  return (
    <>
      <p className="ok" data-testid="verify-result" data-ok="true">
        OK: {records} records, {checkpoints} checkpoints in {result.shards.length} shards (export{" "}
        <code>{result.export_id.slice(0, 8)}</code>)
      </p>
      <table className="table" aria-label="Shards">
        <thead>
          <tr>
            <th>Shard</th>
            <th>Records</th>
            <th>Seq</th>
            <th>Checkpoints</th>
          </tr>
        </thead>
        <tbody>
          {result.shards.map((s) => (
            <tr key={s.shard}>
              <td>{s.shard}</td>
              <td>{s.records}</td>
              <td>{s.records ? `${s.first_seq}..${s.head_seq}` : "—"}</td>
              <td>{s.checkpoints}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}
