/**
 * `npm run openapi`: writes the relay's OpenAPI document to `openapi.json` at the repository root,
 * as the Worker serves it on `/openapi.json`. The document is built by the routes themselves
 * (@hono/zod-openapi), so it is taken from a throwaway relay in workerd rather than assembled here;
 * the committed copy is what `redocly lint` and client generators read, and
 * test/worker/routes/openapi.test.ts fails when it no longer matches the routes.
 *
 * `npm run openapi -- --check` writes nothing and exits 1 when the committed copy is stale.
 */
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { cliFail, parseCli } from "./cli-args.ts";
import { REPO_ROOT, startLocalRelay } from "./local-relay.ts";

const OPENAPI_FILE = path.join(REPO_ROOT, "openapi.json");

const HELP = `Usage: npm run openapi [-- --check]

Writes openapi.json from the routes (a temporary relay serves /openapi.json).

Options:
  --check     write nothing; exit 1 if openapi.json is not what the routes produce
  -h, --help  show this help
`;

const values = parseCli("npm run openapi", { check: { type: "boolean" } }, HELP);

/** The document as the Worker serves it, from a relay started for this in a throwaway state directory. */
async function servedDocument(): Promise<string> {
  const stateDir = await mkdtemp(path.join(tmpdir(), "fleet-relay-openapi-"));
  try {
    const relay = await startLocalRelay({ port: 0, edgePort: null, quiet: true, stateDir });
    try {
      const res = await fetch(`${relay.url}/openapi.json`);
      if (res.status !== 200) throw new Error(`GET /openapi.json answered ${res.status}: ${await res.text()}`);
      return `${JSON.stringify(await res.json(), null, 2)}\n`;
    } finally {
      await relay.stop();
    }
  } finally {
    await rm(stateDir, { recursive: true, force: true });
  }
}

const text = await servedDocument().catch((err: Error) => cliFail("npm run openapi", err.message, 1));
const current = await readFile(OPENAPI_FILE, "utf8").catch(() => null);
if (values.check) {
  if (current !== text) {
    console.error("openapi.json is stale: run `npm run openapi` to regenerate it");
    process.exit(1);
  }
  console.log("openapi.json is up to date");
} else if (current === text) {
  console.log("openapi.json is up to date");
} else {
  await writeFile(OPENAPI_FILE, text);
  console.log(`wrote ${path.relative(process.cwd(), OPENAPI_FILE) || OPENAPI_FILE}`);
}
