/**
 * `npm start`: runs the relay locally in workerd (through Miniflare) with state under `.relay/`.
 *
 *   npm start -- --port 9000 --state-dir /tmp/relay
 */

import { cliFail, parseCli } from "./cli-args.ts";
import { ensureDashboardBuilt } from "./dashboard-build.ts";
import type { LocalRelay } from "./local-relay.ts";
import { DEFAULT_EDGE_PORT, DEFAULT_HOST, DEFAULT_PORT, PortInUseError, startLocalRelay } from "./local-relay.ts";

const DEFAULT_STATE_DIR = ".relay";

const HELP = `Usage: npm start -- [options]

Runs the fleet relay locally in workerd (the Workers runtime) via Miniflare, with REST over
HTTP and a TLS 1.3 edge for agents that requires client certificates from the fleet CA.
D1 and Durable Object state, the Worker bundle, the JWT secret, the audit signing key
(audit-key.pem, public half audit-key.pub.pem) and the development fleet CA live in the
state directory.

Options:
  --host <addr>       interface to listen on (env RELAY_HOST, default ${DEFAULT_HOST})
  --port <n>          port to listen on, 0 = any free port (env RELAY_PORT, default ${DEFAULT_PORT})
  --edge-port <n>     port of the agents' TLS edge, 0 = any free port (env RELAY_EDGE_PORT, default ${DEFAULT_EDGE_PORT})
  --state-dir <dir>   state directory (env RELAY_STATE_DIR, default ${DEFAULT_STATE_DIR})
  --quiet             do not log requests (default off)
  -h, --help          show this help
`;

function fail(message: string, code = 2): never {
  cliFail("npm start", message, code);
}

function parsePort(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) > 65535) fail(`invalid port "${value}" (expected 0-65535)`);
  return Number(value);
}

const values = parseCli(
  "npm start",
  {
    host: { type: "string" },
    port: { type: "string" },
    "edge-port": { type: "string" },
    "state-dir": { type: "string" },
    quiet: { type: "boolean", default: false },
  },
  HELP,
);

const host = values.host ?? (process.env.RELAY_HOST || DEFAULT_HOST);
const port = parsePort(values.port ?? (process.env.RELAY_PORT || String(DEFAULT_PORT)));
const edgePort = parsePort(values["edge-port"] ?? (process.env.RELAY_EDGE_PORT || String(DEFAULT_EDGE_PORT)));
const stateDir = values["state-dir"] ?? (process.env.RELAY_STATE_DIR || DEFAULT_STATE_DIR);

// The dashboard's static assets, rebuilt only when its sources changed; the API runs without them.
let dashboardNote = "";
try {
  await ensureDashboardBuilt({ log: (line) => process.stdout.write(`${line}\n`) });
} catch (err) {
  dashboardNote = `   (build failed: ${(err as Error).message.split("\n")[0]}; the API still runs)`;
  process.stderr.write(`dashboard build failed: ${(err as Error).message}\n`);
}

let relay: LocalRelay | undefined;
let stopping = false;
const starting = startLocalRelay({ host, port, edgePort, stateDir, quiet: values.quiet });

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
const onSignal = (signal: NodeJS.Signals) => void shutdown(signal);
process.on("SIGINT", onSignal);
process.on("SIGTERM", onSignal);

/**
 * Miniflare installs its own SIGINT/SIGTERM hook that kills workerd and calls process.exit(130/143)
 * synchronously, which would cut our clean stop short. Once it has started we own these signals;
 * its "exit" hook stays as a safety net that kills workerd if we ever exit without disposing.
 */
function claimSignals(): void {
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    for (const listener of process.listeners(signal)) {
      if (listener !== onSignal) process.removeListener(signal, listener);
    }
  }
}

try {
  relay = await starting;
  claimSignals();
} catch (err) {
  if (stopping) await new Promise(() => {}); // shutdown() exits
  if (err instanceof PortInUseError) {
    fail(
      `${host}:${err.port} is already in use; stop whatever listens there or pick other ports with --port and --edge-port (0 = any free port)`,
      1,
    );
  }
  const e = err as Error;
  fail(`could not start the relay: ${e.message}${e.cause instanceof Error ? ` (${e.cause.message})` : ""}`, 1);
}

if (!stopping) {
  const { url } = relay;
  process.stdout.write(
    [
      `fleet-relay running in workerd, state in ${relay.stateDir}`,
      `Dashboard ${url}/${dashboardNote}`,
      `REST  ${url}`,
      `Docs  ${url}/docs`,
      `Spec  ${url}/openapi.json`,
      `EDGE  ${relay.edgeUrl}   (agents: mutual TLS with the fleet CA in ${relay.caCertPath})`,
      `Auth  npm run token -- --role operator${stateDir === DEFAULT_STATE_DIR ? "" : ` --state-dir ${stateDir}`}   (roles: viewer, operator, admin)`,
      `      curl -H "Authorization: Bearer $TOKEN" ${url}/api/hosts`,
      `Enrol npm run enroll-token${stateDir === DEFAULT_STATE_DIR ? "" : ` -- --state-dir ${stateDir}`}   then   npm run agent -- enroll --relay ${relay.edgeUrl} --ca-file ${relay.caCertPath} --token <T> --state-dir <dir>`,
      `Audit curl -H "Authorization: Bearer $ADMIN" ${url}/api/audit/export > audit.ndjson && npm run audit-verify -- audit.ndjson --public-key ${relay.auditPublicKeyPath}`,
      "Press Ctrl+C to stop.",
      "",
    ].join("\n"),
  );
}
