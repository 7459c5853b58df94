/**
 * `npm run enroll-token`: asks the local relay (started by `npm start`) for a single-use agent
 * enrolment token, as an admin, and prints only the token, so
 *
 *   TOKEN=$(npm run -s enroll-token -- --tag web)
 */
import path from "node:path";
import { cliFail, parseCli } from "./cli-args.ts";
import { parseTtl, readJwtClaimsConfig, signDevToken } from "./dev-token.ts";
import { readJwtSecret } from "./jwt-secret.ts";

const HELP = `Usage: npm run enroll-token -- [options]

Prints a single-use enrolment token for one agent.

Options:
  --ttl <duration>    lifetime: 15m, 1h, 7d (default 1h)
  --tag <tag>         tag for the enrolled host; repeat for more (default none)
  --relay-url <url>   REST URL of the relay (env RELAY_URL, default http://127.0.0.1:8787)
  --state-dir <dir>   state directory of the relay, for its JWT secret (env RELAY_STATE_DIR, default .relay)
  -h, --help          show this help
`;

function fail(message: string): never {
  cliFail("npm run enroll-token", message);
}

const values = parseCli(
  "npm run enroll-token",
  {
    ttl: { type: "string", default: "1h" },
    tag: { type: "string", multiple: true, default: [] },
    "relay-url": { type: "string" },
    "state-dir": { type: "string" },
  },
  HELP,
);

const ttlSeconds = parseTtl(values.ttl);
if (ttlSeconds === undefined) fail(`invalid --ttl "${values.ttl}" (expected e.g. 15m, 1h, 7d)`);
const stateDir = path.resolve(values["state-dir"] ?? (process.env.RELAY_STATE_DIR || ".relay"));
const relayUrl = (values["relay-url"] ?? (process.env.RELAY_URL || "http://127.0.0.1:8787")).replace(/\/+$/, "");
const secret = await readJwtSecret(stateDir).catch((err: Error) => fail(`cannot read the JWT secret: ${err.message}`));
if (secret === undefined) fail(`no JWT secret in ${stateDir} yet: run npm start first`);

const { issuer, audience } = readJwtClaimsConfig();
const admin = await signDevToken({ secret, role: "admin", ttlSeconds: 60, sub: "enroll-token", issuer, audience });
let res: Response;
try {
  res = await fetch(`${relayUrl}/api/enrollment-tokens`, {
    method: "POST",
    headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
    body: JSON.stringify({ ttl_seconds: ttlSeconds, tags: values.tag }),
  });
} catch (err) {
  fail(`cannot reach the relay at ${relayUrl} (is npm start running?): ${(err as Error).message}`);
}
const body = (await res.json().catch(() => ({}))) as { token?: string; code?: string; detail?: string };
if (res.status !== 201 || !body.token) fail(`the relay refused: ${res.status} ${body.code ?? ""} ${body.detail ?? ""}`.trim());
process.stdout.write(`${body.token}\n`);
