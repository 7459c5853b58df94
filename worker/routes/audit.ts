import { createRoute } from "@hono/zod-openapi";
import { AUDIT_SCHEMA_VERSION, type AuditExportHeader, AuditPage, AuditPublicKey, AuditQuery, nowRfc3339 } from "../../schemas/index.ts";
import type { RecordCursor, RecordFilter } from "../audit-log/storage.ts";
import { auditConfig } from "../config.ts";
import { Cursor } from "../cursor.ts";
import type { Env } from "../env.ts";
import { ErrorCode, RelayError } from "../errors.ts";
import { auditLog } from "../stubs.ts";
import { BEARER, createRouter, jsonContent, problems, requireRole } from "./common.ts";

const listRoute = createRoute({
  method: "get",
  path: "/api/audit",
  operationId: "listAuditRecords",
  tags: ["audit"],
  summary: "Audit records, newest first, filtered, in cursor pages",
  description:
    "Merged across the audit shards, ordered by time, then shard, then seq (newest first). Filters combine (AND); `since` is inclusive, `until` exclusive.",
  security: BEARER,
  middleware: [requireRole("admin")] as const,
  request: { query: AuditQuery },
  responses: { 200: jsonContent(AuditPage, "A page of records"), ...problems(400, 401, 403, 503) },
});

const exportRoute = createRoute({
  method: "get",
  path: "/api/audit/export",
  operationId: "exportAudit",
  tags: ["audit"],
  summary: "The whole audit trail as NDJSON, with signed checkpoints",
  description:
    "Streams one JSON object per line: an `export` header, then for each shard its stored checkpoints, its records in seq order, and a checkpoint signed now at the shard's head (so a removed last record is detected). Verify with `npm run audit-verify -- <file> --public-key <pem>`.",
  security: BEARER,
  middleware: [requireRole("admin")] as const,
  responses: {
    200: {
      description:
        "`application/x-ndjson`: one AuditExportHeader line, then per shard its AuditCheckpoint and AuditRecord lines, ending with its export checkpoint",
    },
    ...problems(401, 403, 503),
  },
});

const publicKeyRoute = createRoute({
  method: "get",
  path: "/api/audit/public-key",
  operationId: "getAuditPublicKey",
  tags: ["audit"],
  summary: "The public key that verifies audit checkpoints",
  security: BEARER,
  middleware: [requireRole("admin")] as const,
  responses: { 200: jsonContent(AuditPublicKey, "SPKI PEM"), ...problems(401, 403, 503) },
});

const CURSOR_SHAPE = /^\d{1,15}\.\d{1,2}\.\d{1,15}$/;
/** Records fetched per shard per export RPC. */
const EXPORT_PAGE = 500;

function decodeCursor(cursor: string | undefined): RecordCursor | null {
  const raw = Cursor.decodeString("a", cursor, CURSOR_SHAPE);
  if (raw === "invalid") throw Cursor.invalid();
  if (raw === null) return null;
  const [at, shard, seq] = raw.split(".").map(Number) as [number, number, number];
  return { at, shard, seq };
}

/** Shard `k`'s part of "before the cursor" in the merged (time, shard, seq) newest-first order. */
function shardBefore(cursor: RecordCursor | null, k: number) {
  if (cursor === null) return null;
  if (k < cursor.shard) return { at: cursor.at, seq: Number.MAX_SAFE_INTEGER, inclusiveAt: true };
  if (k > cursor.shard) return { at: cursor.at, seq: 0, inclusiveAt: false };
  return { at: cursor.at, seq: cursor.seq, inclusiveAt: true };
}

async function listRecords(env: Env, query: AuditQuery) {
  const { shards } = auditConfig(env);
  const cursor = decodeCursor(query.cursor);
  if (cursor && cursor.shard >= shards) throw Cursor.invalid();
  const filter: RecordFilter = {
    sub: query.actor,
    action: query.action,
    host_id: query.host_id,
    job_id: query.job_id,
    since: query.since ? Date.parse(query.since) : undefined,
    until: query.until ? Date.parse(query.until) : undefined,
  };
  let parts: { shard: number; at: number; seq: number; body: string }[][];
  try {
    parts = await Promise.all(
      Array.from({ length: shards }, async (_, k) =>
        (await auditLog(env, k).query(filter, shardBefore(cursor, k), query.limit + 1)).map((r) => ({
          shard: k,
          at: r.at,
          seq: r.seq,
          body: r.body,
        })),
      ),
    );
  } catch {
    throw new RelayError(ErrorCode.AUDIT_UNAVAILABLE, "an audit shard could not be read: retry");
  }
  const merged = parts.flat().sort((a, b) => b.at - a.at || b.shard - a.shard || b.seq - a.seq);
  const page = merged.slice(0, query.limit);
  const last = page.at(-1);
  const more = merged.length > query.limit;
  return {
    items: page.map((r) => JSON.parse(r.body)),
    next_cursor: more && last ? Cursor.encode("a", `${last.at}.${last.shard}.${last.seq}`) : null,
  };
}

/** NDJSON of every shard, one after another; each shard's head is fixed (and signed) when its turn starts. */
function exportStream(env: Env): ReadableStream<Uint8Array> {
  const { shards } = auditConfig(env);
  const exportId = crypto.randomUUID();
  const enc = new TextEncoder();
  async function* lines(): AsyncGenerator<string> {
    const header: AuditExportHeader = {
      type: "export",
      export_id: exportId,
      time: nowRfc3339(Date.now()),
      shards,
      schema_version: AUDIT_SCHEMA_VERSION,
    };
    yield JSON.stringify(header);
    for (let k = 0; k < shards; k++) {
      const stub = auditLog(env, k);
      const head = await stub.exportHead(k, exportId, shards);
      if (!head)
        throw new RelayError(ErrorCode.MISCONFIGURED, "AUDIT_SIGNING_KEY is not set (or not a P-256 PKCS#8 key): exports cannot be signed");
      for (const cp of head.checkpoints) yield cp;
      let after = head.pruned_through;
      while (after < head.checkpoint.seq) {
        const page = await stub.exportPage(after, head.checkpoint.seq, EXPORT_PAGE);
        if (page.length === 0) break;
        for (const body of page) yield body;
        after = (JSON.parse(page.at(-1)!) as { seq: number }).seq;
      }
      yield JSON.stringify(head.checkpoint);
    }
  }
  const it = lines();
  return new ReadableStream({
    async pull(controller) {
      const { value, done } = await it.next();
      if (done) controller.close();
      else controller.enqueue(enc.encode(`${value}\n`));
    },
    async cancel() {
      await it.return(undefined);
    },
  });
}

export const auditRoutes = createRouter()
  .openapi(listRoute, async (c) => c.json(await listRecords(c.env, c.req.valid("query")), 200))
  .openapi(exportRoute, async (c) => {
    // The first shard's head is taken before answering, so a misconfigured key is a clear 503, not a cut stream.
    const stream = exportStream(c.env);
    const reader = stream.getReader();
    let first: ReadableStreamReadResult<Uint8Array>;
    let second: ReadableStreamReadResult<Uint8Array>;
    try {
      first = await reader.read();
      second = await reader.read();
    } catch (err) {
      if (err instanceof RelayError) throw err;
      throw new RelayError(ErrorCode.AUDIT_UNAVAILABLE, "an audit shard could not be read: retry");
    }
    const rest = new ReadableStream<Uint8Array>({
      start(controller) {
        if (first.value) controller.enqueue(first.value);
        if (second.value) controller.enqueue(second.value);
        if (second.done) controller.close();
      },
      async pull(controller) {
        const { value, done } = await reader.read();
        if (done) controller.close();
        else controller.enqueue(value);
      },
      cancel: (reason) => reader.cancel(reason),
    });
    return new Response(rest, {
      status: 200,
      headers: { "content-type": "application/x-ndjson", "content-disposition": 'attachment; filename="audit.ndjson"' },
    });
  })
  .openapi(publicKeyRoute, async (c) => {
    const key = await auditLog(c.env, 0).publicKey();
    if (!key) throw new RelayError(ErrorCode.MISCONFIGURED, "AUDIT_SIGNING_KEY is not set");
    return c.json(key, 200);
  });
