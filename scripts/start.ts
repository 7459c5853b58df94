/**
 * `npm start`: runs the relay locally in workerd (through Miniflare) with state under `.relay/`.
 *
 *   npm start -- --port 9000 --state-dir /tmp/relay
 */
import { parseArgs } from "node:util";
import { DEFAULT_HOST, DEFAULT_PORT, PortInUseError, startLocalRelay } from "./local-relay.ts";
import type { LocalRelay } from "./local-relay.ts";

const DEFAULT_STATE_DIR = ".relay";

const HELP = `Usage: npm start -- [options]

Runs the fleet relay locally in workerd (the Workers runtime) via Miniflare.
D1 and Durable Object state, the Worker bundle and the JWT secret live in the state directory.

Options:
  --host <addr>       interface to listen on (env RELAY_HOST, default ${DEFAULT_HOST})
  --port <n>          port to listen on, 0 = any free port (env RELAY_PORT, default ${DEFAULT_PORT})
  --state-dir <dir>   state directory (env RELAY_STATE_DIR, default ${DEFAULT_STATE_DIR})
  --quiet             do not log requests
  -h, --help          show this help
`;

function fail(message: string, code = 2): never {
  process.stderr.write(`npm start: ${message}\n`);
  process.exit(code);
}

function parsePort(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) > 65535) fail(`invalid port "${value}" (expected 0-65535)`);
  return Number(value);
}

let values;
try {
  ({ values } = parseArgs({
    options: {
      host: { type: "string" },
      port: { type: "string" },
      "state-dir": { type: "string" },
      quiet: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
    allowPositionals: false,
  }));
} catch (err) {
  fail(`${(err as Error).message}\n\n${HELP}`);
}
if (values.help) {
  process.stdout.write(HELP);
  process.exit(0);
}

const host = values.host ?? (process.env.RELAY_HOST || DEFAULT_HOST);
const port = parsePort(values.port ?? (process.env.RELAY_PORT || String(DEFAULT_PORT)));
const stateDir = values["state-dir"] ?? (process.env.RELAY_STATE_DIR || DEFAULT_STATE_DIR);

let relay: LocalRelay | undefined;
let stopping = false;
const starting = startLocalRelay({ host, port, stateDir, quiet: values.quiet });

async function shutdown(signal: NodeJS.Signals): Promise<void> {
  if (stopping) {
    // A second Ctrl+C: give up waiting for a clean stop.
    process.stderr.write(`${signal} again, exiting without waiting\n`);
    process.exit(1);
  }
  stopping = true;
  try {
    const r = relay ?? (await starting.catch(() => undefined));
    await r?.stop();
    process.stdout.write("stopped\n");
    process.exit(0);
  } catch (err) {
    process.stderr.write(`error while stopping: ${(err as Error).message}\n`);
    process.exit(1);
  }
}
process.on("SIGINT", (s) => void shutdown(s));
process.on("SIGTERM", (s) => void shutdown(s));

try {
  relay = await starting;
} catch (err) {
  if (stopping) await new Promise(() => {}); // shutdown() exits
  if (err instanceof PortInUseError) {
    fail(`${host}:${err.port} is already in use; stop whatever listens there or pick another port with --port (0 = any free port)`, 1);
  }
  const e = err as Error;
  fail(`could not start the relay: ${e.message}${e.cause instanceof Error ? ` (${e.cause.message})` : ""}`, 1);
}

if (!stopping) {
  const { url } = relay;
  process.stdout.write(
    [
      `fleet-relay running in workerd, state in ${relay.stateDir}`,
      `REST  ${url}`,
      `Docs  ${url}/docs`,
      `Spec  ${url}/openapi.json`,
      `Auth  npm run token -- --role operator${stateDir === DEFAULT_STATE_DIR ? "" : ` --state-dir ${stateDir}`}   (roles: viewer, operator, admin)`,
      `      curl -H "Authorization: Bearer $TOKEN" ${url}/api/hosts`,
      "Press Ctrl+C to stop.",
      "",
    ].join("\n"),
  );
}
