/**
 * `npm run audit-verify -- <export.ndjson> --public-key <pem-file>`: verifies an audit export
 * offline (worker/audit-log/verify.ts). Prints the record and checkpoint counts per shard and
 * "OK" (exit 0), or the first broken record: shard, seq and why (exit 1). Usage errors exit 2.
 */
import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { importPublicKey, type Key } from "../worker/audit-log/signing.ts";
import { verifyExport } from "../worker/audit-log/verify.ts";
import { cliFail } from "./cli-args.ts";

const HELP = `Usage: npm run audit-verify -- <export.ndjson> --public-key <pem-file>

Verifies an export of GET /api/audit/export: every shard's hash chain, every checkpoint's
signature, the chain's start (genesis or a signed prune checkpoint) and its end (the export's
own checkpoint, so a removed last record is detected).

Options:
  --public-key <file>  SPKI PEM of the audit key (locally .relay/audit-key.pub.pem; or GET /api/audit/public-key)
  -h, --help           show this help
`;

function fail(message: string): never {
  cliFail("npm run audit-verify", message);
}

let parsed: ReturnType<
  typeof parseArgs<{ options: { "public-key": { type: "string" }; help: { type: "boolean"; short: "h" } }; allowPositionals: true }>
>;
try {
  parsed = parseArgs({
    options: { "public-key": { type: "string" }, help: { type: "boolean", short: "h" } },
    allowPositionals: true,
    strict: true,
  });
} catch (err) {
  fail(`${(err as Error).message}\n\n${HELP}`);
}
if (parsed.values.help) {
  process.stdout.write(HELP);
  process.exit(0);
}
if (parsed.positionals.length !== 1) fail(`give exactly one export file\n\n${HELP}`);
const keyFile = parsed.values["public-key"];
if (!keyFile) fail(`--public-key is required\n\n${HELP}`);

let key: Key;
try {
  key = await importPublicKey(await readFile(keyFile, "utf8"));
} catch (err) {
  fail(`cannot read the public key ${keyFile}: ${(err as Error).message}`);
}
let text: string;
try {
  text = await readFile(parsed.positionals[0]!, "utf8");
} catch (err) {
  fail(`cannot read ${parsed.positionals[0]}: ${(err as Error).message}`);
}

const result = await verifyExport(text, key);
if (!result.ok) {
  const where = result.shard === null ? `line ${result.line}` : `shard ${result.shard} seq ${result.seq ?? "?"} (line ${result.line})`;
  process.stdout.write(`FAILED at ${where}: ${result.reason}\n`);
  process.exit(1);
}
for (const s of result.shards) {
  process.stdout.write(`shard ${s.shard}: ${s.records} records (seq ${s.first_seq ?? "-"}..${s.head_seq}), ${s.checkpoints} checkpoints\n`);
}
const records = result.shards.reduce((n, s) => n + s.records, 0);
const checkpoints = result.shards.reduce((n, s) => n + s.checkpoints, 0);
process.stdout.write(`OK: ${records} records, ${checkpoints} checkpoints in ${result.shards.length} shards (export ${result.export_id})\n`);
