/**
 * workerd's own floor under "memory per idle connected agent": N WebSockets, each held by its own
 * Durable Object that does nothing but accept it with the hibernation API (heartbeats answered by
 * the runtime), run through Miniflare as the relay is. A second round makes each object write one
 * SQLite row first, as every HostRelay does. Prints workerd's RSS and open files per socket, 3 s
 * after the last connect and once the objects have been evicted (their SQLite files closed).
 * Not part of `npm run bench`:
 *
 *   node --experimental-strip-types bench/ws-floor.ts        (BENCH_FLOOR_SOCKETS, default 2000)
 */
import { execSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { convertV4MiniflareOptions, Miniflare } from "miniflare";
import WebSocket from "ws";
import { fdsOf, intEnv, pause, rssOf } from "./soak-common.ts";
import { bytes, table } from "./stats.ts";

const SOCKETS = intEnv("BENCH_FLOOR_SOCKETS", 2000, 1);

const SCRIPT = `
import { DurableObject } from "cloudflare:workers";
export class Holder extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair("ping", "pong"));
  }
  async fetch(request) {
    if (new URL(request.url).searchParams.has("sql")) {
      this.ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS t (x INTEGER); INSERT INTO t VALUES (1)");
    }
    const pair = new WebSocketPair();
    this.ctx.acceptWebSocket(pair[1]);
    return new Response(null, { status: 101, webSocket: pair[0] });
  }
}
export default {
  fetch(request, env) {
    const name = new URL(request.url).pathname.slice(1);
    return env.HOLDER.get(env.HOLDER.idFromName(name)).fetch(request);
  },
};
`;

interface Round {
  label: string;
  rssBefore: number;
  rssConnected: number;
  rssIdle: number;
  fdsBefore: number;
  fdsConnected: number;
  fdsIdle: number;
}

async function round(label: string, sql: boolean): Promise<Round> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "ws-floor-"));
  const mf = new Miniflare(
    convertV4MiniflareOptions({
      modules: true,
      script: SCRIPT,
      durableObjects: { HOLDER: { className: "Holder", useSQLite: true } },
      durableObjectsPersist: dir,
      cf: false,
    }),
  );
  const url = (await mf.ready).href.replace(/^http/, "ws");
  const pid = Number(execSync("pgrep -n workerd").toString().trim());
  const rssBefore = rssOf(pid);
  const fdsBefore = fdsOf(pid);
  const sockets: WebSocket[] = [];
  for (let i = 0; i < SOCKETS; i += 32) {
    const batch = Array.from({ length: Math.min(32, SOCKETS - i) }, (_, k) => {
      const ws = new WebSocket(`${url}h${i + k}${sql ? "?sql" : ""}`);
      sockets.push(ws);
      return new Promise<void>((resolve, reject) => {
        ws.once("open", () => resolve());
        ws.once("error", reject);
      });
    });
    await Promise.all(batch);
  }
  await pause(3000);
  const rssConnected = rssOf(pid);
  const fdsConnected = fdsOf(pid);
  // Evicted about 10 s after their last event: wait until workerd's open files stop falling (at most 60 s).
  let fdsIdle = fdsOf(pid);
  for (let waited = 0; waited < 60_000; waited += 2000) {
    await pause(2000);
    const now = fdsOf(pid);
    if (now === fdsIdle && waited >= 12_000) break;
    fdsIdle = now;
  }
  const rssIdle = rssOf(pid);
  for (const ws of sockets) ws.terminate();
  await mf.dispose();
  await rm(dir, { recursive: true, force: true });
  return { label, rssBefore, rssConnected, rssIdle, fdsBefore, fdsConnected, fdsIdle };
}

const rounds = [await round("accept only", false), await round("one SQLite row first", true)];
const per = (a: number, b: number) => bytes((a - b) / SOCKETS);
const perN = (a: number, b: number) => ((a - b) / SOCKETS).toFixed(2);
console.log(`workerd per hibernatable WebSocket, ${SOCKETS} sockets, one Durable Object each (Miniflare's entry port, no TLS edge)`);
console.log(
  table(
    ["object does", "RSS before", "per socket, connected", "per socket, idle", "fds per socket, connected", "fds per socket, idle"],
    rounds.map((r) => [
      r.label,
      bytes(r.rssBefore),
      per(r.rssConnected, r.rssBefore),
      per(r.rssIdle, r.rssBefore),
      perN(r.fdsConnected, r.fdsBefore),
      perN(r.fdsIdle, r.fdsBefore),
    ]),
  ),
);
