/**
 * `npm start` end to end: the real start script in a child process (workerd via Miniflare),
 * a token from the real token script, REST calls over HTTP, a clean SIGINT stop, and a restart
 * on the same state directory that keeps the data and the JWT secret.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";

const ROOT = path.resolve(import.meta.dirname, "..", "..");
const START = path.join(ROOT, "scripts", "start.ts");
const TOKEN = path.join(ROOT, "scripts", "token.ts");
const execFileP = promisify(execFile);

const STARTUP_TIMEOUT_MS = 45_000;
const STOP_TIMEOUT_MS = 15_000;

interface Relay {
  child: ChildProcess;
  url: string;
  /** Everything the process printed so far (stdout and stderr), for failure messages. */
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const running = new Set<ChildProcess>();

async function startRelay(stateDir: string): Promise<Relay> {
  const child = spawn(process.execPath, [START, "--port", "0", "--state-dir", stateDir], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, RELAY_HOST: "", RELAY_PORT: "", RELAY_STATE_DIR: "" },
  });
  running.add(child);
  let out = "";
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once("exit", (code, signal) => {
      running.delete(child);
      resolve({ code, signal });
    });
  });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`no "REST  http://…" line within ${STARTUP_TIMEOUT_MS} ms; output:\n${out}`));
    }, STARTUP_TIMEOUT_MS);
    const onData = (chunk: Buffer) => {
      out += chunk.toString();
      const m = /^REST {2}(http:\/\/\S+)$/m.exec(out);
      if (m?.[1]) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", (chunk: Buffer) => {
      out += chunk.toString();
    });
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`start script exited (code ${code}, signal ${signal}) before listening; output:\n${out}`));
    });
  });
  return { child, url, output: () => out, exited };
}

/** Sends SIGINT and waits (bounded) for the exit. */
async function stopRelay(relay: Relay): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  relay.child.kill("SIGINT");
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`no exit within ${STOP_TIMEOUT_MS} ms of SIGINT; output:\n${relay.output()}`)),
      STOP_TIMEOUT_MS,
    );
  });
  try {
    return await Promise.race([relay.exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function mintToken(stateDir: string, role: string): Promise<string> {
  const { stdout } = await execFileP(process.execPath, [TOKEN, "--role", role, "--state-dir", stateDir], {
    cwd: ROOT,
    timeout: 15_000,
  });
  return stdout.trim();
}

const auth = (token: string) => ({ authorization: `Bearer ${token}` });

/** Tries a WebSocket upgrade; resolves with the HTTP status (101 when it opened). */
function upgradeStatus(url: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers, handshakeTimeout: 10_000 });
    ws.once("open", () => {
      ws.terminate();
      resolve(101);
    });
    ws.once("unexpected-response", (_req, res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    ws.once("error", reject);
  });
}

interface HostList {
  items: { host_id: string; hostname: string; cert_fingerprint_sha256: string }[];
}

describe("npm start (scripts/start.ts)", () => {
  let stateDir: string;
  const fingerprint = "ab".repeat(32);

  beforeAll(async () => {
    stateDir = await mkdtemp(path.join(tmpdir(), "fleet-relay-e2e-"));
  });

  afterAll(async () => {
    // Only reached with a relay still up if a test failed: SIGTERM lets it stop workerd, SIGKILL is the fallback.
    await Promise.all(
      [...running].map(
        (child) =>
          new Promise<void>((resolve) => {
            const timer = setTimeout(() => {
              child.kill("SIGKILL");
              resolve();
            }, STOP_TIMEOUT_MS);
            child.once("exit", () => {
              clearTimeout(timer);
              resolve();
            });
            child.kill("SIGTERM");
          }),
      ),
    );
    await rm(stateDir, { recursive: true, force: true });
  });

  it("serves REST, stops cleanly on SIGINT, and keeps its data and secret across a restart", async () => {
    // First run: fresh state directory.
    const first = await startRelay(stateDir);
    expect(first.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(first.output()).toContain(`Docs  ${first.url}/docs`);
    expect(first.output()).toContain(`${first.url}/openapi.json`);
    expect(first.output()).toContain("npm run token -- --role operator");

    const health = await fetch(`${first.url}/healthz`);
    expect(health.status).toBe(200);

    const token = await mintToken(stateDir, "admin");
    expect(token.split(".")).toHaveLength(3);

    const anonymous = await fetch(`${first.url}/api/hosts`);
    expect(anonymous.status).toBe(401);
    const listed = await fetch(`${first.url}/api/hosts`, { headers: auth(token) });
    expect(listed.status).toBe(200);

    const created = await fetch(`${first.url}/api/hosts`, {
      method: "POST",
      headers: { ...auth(token), "content-type": "application/json" },
      body: JSON.stringify({ hostname: "web-1", cert_fingerprint_sha256: fingerprint }),
    });
    expect(created.status, await created.clone().text()).toBe(201);

    // Miniflare's port lets any client set `request.cf` with an MF-CF-Blob header; a forged
    // "verified client certificate" for the enrolled host must not get an agent connection.
    const forgedCf = JSON.stringify({
      tlsClientAuth: { certPresented: "1", certVerified: "SUCCESS", certRevoked: "0", certFingerprintSHA256: fingerprint },
    });
    const forged = await upgradeStatus(`${first.url.replace(/^http/, "ws")}/agent/connect`, { "MF-CF-Blob": forgedCf });
    expect(forged).toBe(401);

    const stopped = await stopRelay(first);
    expect(stopped).toEqual({ code: 0, signal: null });
    expect(first.output()).toMatch(/^stopped$/m);

    // Second run on the same state directory: same secret (old token still valid), same data.
    const second = await startRelay(stateDir);
    try {
      const again = await fetch(`${second.url}/api/hosts`, { headers: auth(token) });
      expect(again.status).toBe(200);
      const body = (await again.json()) as HostList;
      expect(body.items.map((h) => [h.hostname, h.cert_fingerprint_sha256])).toContainEqual(["web-1", fingerprint]);
      expect(body.items).toHaveLength(1);
    } finally {
      const stoppedAgain = await stopRelay(second);
      expect(stoppedAgain).toEqual({ code: 0, signal: null });
    }
  });

  it("token script: no secret yet, bad role and bad ttl exit 2 with a message on stderr", async () => {
    const empty = await mkdtemp(path.join(tmpdir(), "fleet-relay-e2e-empty-"));
    try {
      const run = (args: string[]) =>
        execFileP(process.execPath, [TOKEN, ...args], { cwd: ROOT, timeout: 15_000 }).then(
          () => ({ code: 0, stdout: "", stderr: "" }),
          (err: { code: number; stdout: string; stderr: string }) => err,
        );
      const noSecret = await run(["--role", "admin", "--state-dir", empty]);
      expect(noSecret.code).toBe(2);
      expect(noSecret.stdout).toBe("");
      expect(noSecret.stderr).toContain("run npm start first");

      const badRole = await run(["--role", "root", "--state-dir", stateDir]);
      expect(badRole.code).toBe(2);
      expect(badRole.stderr).toContain("unknown role");

      const badTtl = await run(["--role", "viewer", "--ttl", "soon", "--state-dir", stateDir]);
      expect(badTtl.code).toBe(2);
      expect(badTtl.stderr).toContain("--ttl");
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
  });
});
