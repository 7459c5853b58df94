/**
 * `npm run token -- --role operator`: prints a REST token for the relay started by `npm start`,
 * signed with the secret in `<state-dir>/jwt-secret`. Only the token goes to stdout, so
 *
 *   TOKEN=$(npm run -s token -- --role admin)
 */
import path from "node:path";
import { cliFail, parseCli } from "./cli-args.ts";
import { isRole, parseTtl, ROLES, readJwtClaimsConfig, signDevToken } from "./dev-token.ts";
import { readJwtSecret } from "./jwt-secret.ts";

const HELP = `Usage: npm run token -- --role <role> [options]

Prints a signed REST token (HS256 JWT) for the local relay.

Options:
  --role <role>       ${ROLES.join(" | ")} (required)
  --ttl <duration>    lifetime: 30s, 15m, 1h, 7d (default 1h)
  --sub <name>        subject claim (default local-dev)
  --state-dir <dir>   state directory of the relay (env RELAY_STATE_DIR, default .relay)
  -h, --help          show this help
`;

function fail(message: string): never {
  cliFail("npm run token", message);
}

const values = parseCli(
  "npm run token",
  {
    role: { type: "string" },
    ttl: { type: "string", default: "1h" },
    sub: { type: "string", default: "local-dev" },
    "state-dir": { type: "string" },
  },
  HELP,
);

const role = values.role;
if (role === undefined) fail(`--role is required (${ROLES.join(", ")})`);
if (!isRole(role)) fail(`unknown role "${role}" (expected ${ROLES.join(", ")})`);
const ttlSeconds = parseTtl(values.ttl);
if (ttlSeconds === undefined) fail(`invalid --ttl "${values.ttl}" (expected e.g. 30s, 15m, 1h, 7d)`);
if (values.sub === "") fail("--sub must not be empty");

const stateDir = path.resolve(values["state-dir"] ?? (process.env.RELAY_STATE_DIR || ".relay"));
const secret = await readJwtSecret(stateDir).catch((err: Error) => fail(`cannot read the JWT secret: ${err.message}`));
if (secret === undefined) {
  fail(`no JWT secret in ${stateDir} yet: run npm start first${values["state-dir"] ? ` (with --state-dir ${values["state-dir"]})` : ""}`);
}

const { issuer, audience } = readJwtClaimsConfig();
process.stdout.write(`${await signDevToken({ secret, role, ttlSeconds, sub: values.sub, issuer, audience })}\n`);
