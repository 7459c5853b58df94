/**
 * `npm run bench:events`: how many events per second the one FleetEvents object sustains, fanned
 * out to K WebSocket subscribers of `/api/events`, with one more subscriber that never reads.
 * Prints figures (never pass/fail); `benchEvents()` returns them as an object.
 *
 * Why events enter through the test-only `POST /test/fleet-events/publish` (worker/routes/test-publish.ts)
 * and not as command.state events of real commands: the command path tops out near 360 commands/s
 * on this machine (issue 11's table), a few events each, and its CPU (HostRelay, outbox, agents)
 * would be most of what is measured. The route calls the same `publish` RPC a HostRelay's outbox
 * calls, with batches like an outbox's, so everything from `publish` to each subscriber's socket is
 * the production path.
 *
 * For each K (BENCH_EVENTS_SUBSCRIBERS, default 1,10,100) the offered rate steps up
 * (BENCH_EVENTS_RATES, default 250…8000 events/s, BENCH_EVENTS_STEP_S seconds each, batches of
 * BENCH_EVENTS_BATCH) until the relay no longer keeps up. Subscribers follow every event (no
 * filter: the most fan-out; or, with BENCH_EVENTS_FILTER_HOSTS=n, each follows n of the 100 hosts
 * the events come from) and acknowledge every 64 events. The slow subscriber stops reading its
 * socket once it is ready; after the steps, enough events to pass its send budget are published
 * (the bench sets the budget to 1 MiB, production's default is 8 MiB), then it reads again, and we
 * report how its stream ended (4008 = closed past its send budget).
 */
import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import WebSocket from "ws";
import { signDevToken } from "../scripts/dev-token.ts";
import { readJwtSecret } from "../scripts/jwt-secret.ts";
import { forkRelayChild } from "./relay-child.ts";
import { RestClient } from "./rest.ts";
import { ms, summarize, table } from "./stats.ts";

/** The relay's per-subscriber send budget in this bench (EVENT_SUBSCRIBER_MAX_UNACKED_BYTES; production default 8 MiB). */
const SEND_BUDGET_BYTES = 1024 * 1024;

export interface EventsBenchOptions {
  /** Subscriber counts to measure. Default [1, 10, 100]. */
  subscribers?: number[];
  /** Offered publish rates (events/s), stepped up until one is not kept up with. Default 250…8000. */
  rates?: number[];
  /** Seconds per rate step. Default 3. */
  stepSeconds?: number;
  /** Events per publish call. Default 25. */
  batch?: number;
  /** Publish calls in flight at most. Default 16. */
  inFlight?: number;
  /** Hosts each subscriber follows (`hosts=` filter, of the 100 the events come from); 0: no filter, every event. Default 0. */
  filterHosts?: number;
  /** Progress lines. Default: none. */
  log?: (line: string) => void;
}

export interface EventsStep {
  subscribers: number;
  offered: number;
  /** Events/s the relay accepted (publish calls answered). */
  published: number;
  /** Events/s the slowest and the fastest (non-slow) subscriber received. */
  deliveredMin: number;
  deliveredMax: number;
  /** Publish call sent → event received, ms, over the sampled subscribers. */
  latency: ReturnType<typeof summarize>;
  /** workerd CPU per published event, ms. */
  workerdCpuPerEvent: number;
  /** Events the relay accepted in this step. */
  accepted: number;
  /** Hosts each subscriber followed (0: no filter). */
  filterHosts: number;
  /** Every fast subscriber got every accepted event (within a 10 s drain). */
  complete: boolean;
  /** `complete`, and the relay accepted at least 95 % of the offered rate. */
  keptUp: boolean;
}

export interface EventsFigures {
  steps: EventsStep[];
  /** Per K: the highest rate kept up with (events/s published). */
  sustained: Record<number, number>;
  /** How the never-reading subscriber's stream ended, per K (close code, or "open"). */
  slowSubscriber: Record<number, string>;
  /** The same rate and K, without the slow subscriber: latency p50/p99 (ms), to compare with the run that had it. */
  control: { subscribers: number; rate: number; withSlow: ReturnType<typeof summarize>; withoutSlow: ReturnType<typeof summarize> } | null;
}

// ------------------------------------------------------------------- the relay

interface Relay {
  url: string;
  workerdCpuMs(): Promise<number>;
  stop(): Promise<void>;
}

async function startRelay(stateDir: string): Promise<Relay> {
  // TEST_FAULTS enables the publish route; a smaller send budget than production's makes the slow subscriber's end come sooner.
  const bindings = { TEST_FAULTS: "1", EVENT_SUBSCRIBER_MAX_UNACKED_BYTES: String(SEND_BUDGET_BYTES) };
  const child = await forkRelayChild(stateDir, { bindings });
  return { url: child.ready.url, workerdCpuMs: async () => (await child.sample()).workerdCpuMs, stop: () => child.stop() };
}

// ------------------------------------------------------------------- subscribers

/** Events sent and not yet seen, by message id: when their publish call left. */
type SentAt = Map<string, number>;

class Subscriber {
  received = 0;
  readonly ws: WebSocket;
  readonly ready: Promise<void>;
  closed: string | null = null;
  /** Set on the sampled subscribers: latencies are taken from their frames. */
  latencies: number[] | null;
  #lastOffset = 0;
  #unacked = 0;

  /** The hosts it follows, or null for every event. */
  readonly hosts: ReadonlySet<string> | null;

  constructor(url: string, token: string, sentAt: SentAt | null, hosts: string[] | null) {
    this.latencies = sentAt ? [] : null;
    this.hosts = hosts ? new Set(hosts) : null;
    const query = hosts ? `?hosts=${hosts.join(",")}` : "";
    this.ws = new WebSocket(`${url.replace(/^http/, "ws")}/api/events${query}`, { headers: { authorization: `Bearer ${token}` } });
    this.ws.on("close", (code) => {
      this.closed = String(code);
    });
    this.ready = new Promise((resolve, reject) => {
      this.ws.once("error", reject);
      this.ws.on("message", (data: Buffer) => {
        const text = data.toString("utf8");
        if (text.startsWith('{"type":"ready"')) return resolve();
        this.received++;
        // Only the sampled subscribers parse; the others find the offset to acknowledge.
        if (sentAt) {
          const event = JSON.parse(text) as { message_id?: string; offset: number };
          const t = event.message_id === undefined ? undefined : sentAt.get(event.message_id);
          if (t !== undefined) this.latencies!.push(performance.now() - t);
          this.#lastOffset = event.offset;
        } else {
          const at = text.indexOf('"offset":');
          this.#lastOffset = Number.parseInt(text.slice(at + 9, at + 25), 10);
        }
        if (++this.#unacked >= 64) {
          this.#unacked = 0;
          this.ws.send(JSON.stringify({ type: "ack", offset: this.#lastOffset }));
        }
      });
    });
  }

  close(): void {
    this.ws.terminate();
  }
}

/** A subscriber that stops reading its socket once the stream is ready (TCP backs up to the relay). */
class SlowSubscriber {
  readonly ws: WebSocket;
  readonly ready: Promise<void>;
  closed: string | null = null;
  received = 0;

  constructor(url: string, token: string) {
    this.ws = new WebSocket(`${url.replace(/^http/, "ws")}/api/events`, { headers: { authorization: `Bearer ${token}` } });
    this.ws.on("close", (code) => {
      this.closed = String(code);
    });
    this.ready = new Promise((resolve, reject) => {
      this.ws.once("error", reject);
      this.ws.on("message", (data: Buffer) => {
        this.received++;
        if (!data.toString("utf8").startsWith('{"type":"ready"')) return;
        (this.ws as unknown as { _socket: { pause(): void } })._socket.pause();
        resolve();
      });
    });
  }

  /** Reads again; resolves with how the stream ended (close code) or "open" after `ms`. */
  async drain(ms: number): Promise<string> {
    (this.ws as unknown as { _socket: { resume(): void } })._socket.resume();
    const deadline = Date.now() + ms;
    // The close frame is what counts; ws reports "close" only once the TCP connection ends too.
    const code = () =>
      this.closed ?? (this.ws.readyState >= WebSocket.CLOSING ? String((this.ws as unknown as { _closeCode: number })._closeCode) : null);
    while (code() === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const ended = `${code() ?? "open"} after ${this.received} frames`;
    this.ws.terminate();
    return ended;
  }
}

// ------------------------------------------------------------------- one step

function event(
  hosts: string[],
  i: number,
): { type: string; at: string; host_id: string; message_id: string; state: string; tags: string[] } {
  return {
    type: "command.state",
    at: new Date().toISOString(),
    host_id: hosts[i % hosts.length]!,
    message_id: randomUUID(),
    state: "delivered",
    tags: ["bench", `rack-${i % 8}`],
  };
}

async function step(
  relay: Relay,
  rest: RestClient,
  subs: Subscriber[],
  sentAt: SentAt,
  rate: number,
  hosts: string[],
  o: Required<Omit<EventsBenchOptions, "log" | "subscribers" | "rates">>,
): Promise<Omit<EventsStep, "subscribers">> {
  const perHost = new Map<string, number>();
  for (const s of subs) {
    s.received = 0;
    if (s.latencies) s.latencies = [];
  }
  const cpu0 = await relay.workerdCpuMs();
  const t0 = performance.now();
  const end = t0 + o.stepSeconds * 1000;
  let sent = 0;
  let accepted = 0;
  let inFlight = 0;
  let failure: Error | null = null;
  const calls: Promise<void>[] = [];
  // Open loop: batches are due by the clock; one due while `inFlight` calls are pending is skipped, not queued.
  while (performance.now() < end && !failure) {
    const due = Math.floor(((performance.now() - t0) / 1000) * rate);
    while (sent + o.batch <= due && inFlight < o.inFlight) {
      const events = Array.from({ length: o.batch }, (_, k) => event(hosts, sent + k));
      const at = performance.now();
      for (const e of events) sentAt.set(e.message_id, at);
      sent += o.batch;
      inFlight++;
      calls.push(
        rest.request("POST", "/test/fleet-events/publish", { events }).then(
          (r) => {
            inFlight--;
            if (r.status !== 204) {
              failure ??= new Error(`publish: HTTP ${r.status}: ${r.body.slice(0, 300)}`);
              return;
            }
            accepted += events.length;
            for (const e of events) perHost.set(e.host_id, (perHost.get(e.host_id) ?? 0) + 1);
          },
          (err: Error) => {
            inFlight--;
            failure ??= err;
          },
        ),
      );
    }
    if (sent + o.batch <= due) sent = due - (due % o.batch); // fell behind: skip what is overdue
    await new Promise((r) => setTimeout(r, 2));
  }
  await Promise.all(calls);
  if (failure) throw failure;
  const publishedS = (performance.now() - t0) / 1000;
  // Drain: wait (bounded) until every subscriber has what was accepted for the hosts it follows.
  const expected = subs.map((s) => (s.hosts ? [...s.hosts].reduce((n, h) => n + (perHost.get(h) ?? 0), 0) : accepted));
  const short = () => subs.some((s, i) => s.received < expected[i]!);
  const drainUntil = performance.now() + 10_000;
  while (short() && performance.now() < drainUntil) await new Promise((r) => setTimeout(r, 20));
  const cpu1 = await relay.workerdCpuMs();
  const latencies = subs.flatMap((s) => s.latencies ?? []);
  sentAt.clear();
  const counts = subs.map((s) => s.received);
  const offered = rate;
  const published = accepted / publishedS;
  const complete = !short();
  return {
    accepted,
    filterHosts: o.filterHosts,
    complete,
    offered,
    published: Math.round(published),
    deliveredMin: Math.round(Math.min(...counts) / publishedS),
    deliveredMax: Math.round(Math.max(...counts) / publishedS),
    latency: summarize(latencies),
    workerdCpuPerEvent: Math.round(((cpu1 - cpu0) / Math.max(1, accepted)) * 1000) / 1000,
    keptUp: published >= 0.95 * offered && complete,
  };
}

/** Publishes `n` events in batches of 100, one call at a time (after the measured steps). */
async function burst(rest: RestClient, n: number): Promise<void> {
  const hosts = [randomUUID()];
  for (let sent = 0; sent < n; sent += 100) {
    const events = Array.from({ length: 100 }, (_, k) => event(hosts, sent + k));
    const r = await rest.request("POST", "/test/fleet-events/publish", { events });
    if (r.status !== 204) throw new Error(`publish: HTTP ${r.status}: ${r.body.slice(0, 300)}`);
  }
}

// ------------------------------------------------------------------- the run

export async function benchEvents(opts: EventsBenchOptions = {}): Promise<EventsFigures> {
  const o = {
    subscribers: opts.subscribers ?? [1, 10, 100],
    rates: opts.rates ?? [250, 500, 1000, 2000, 4000, 8000],
    stepSeconds: opts.stepSeconds ?? 3,
    batch: opts.batch ?? 25,
    inFlight: opts.inFlight ?? 16,
    filterHosts: opts.filterHosts ?? 0,
  };
  const hosts = Array.from({ length: 100 }, () => randomUUID());
  /** Subscriber i follows filterHosts consecutive hosts from i on (wrapping), so the hosts are evenly followed. */
  const followed = (i: number) =>
    o.filterHosts > 0 ? Array.from({ length: o.filterHosts }, (_, j) => hosts[(i + j) % hosts.length]!) : null;
  const log = opts.log ?? (() => {});
  const stateDir = await mkdtemp(path.join(os.tmpdir(), "fleet-bench-events-"));
  const relay = await startRelay(stateDir);
  const secret = (await readJwtSecret(stateDir))!;
  const admin = await signDevToken({ secret, role: "admin", ttlSeconds: 7200, sub: "bench-events" });
  const viewer = await signDevToken({ secret, role: "viewer", ttlSeconds: 7200, sub: "bench-events-viewer" });
  const rest = new RestClient(relay.url, admin, o.inFlight * 2);
  const figures: EventsFigures = { steps: [], sustained: {}, slowSubscriber: {}, control: null };
  const sentAt: SentAt = new Map();
  try {
    for (const k of o.subscribers) {
      // Latency is sampled on at most 4 subscribers, so the bench's own parsing stays small.
      const subs = Array.from({ length: k }, (_, i) => new Subscriber(relay.url, viewer, i < 4 ? sentAt : null, followed(i)));
      const slow = new SlowSubscriber(relay.url, viewer);
      await Promise.all([...subs.map((s) => s.ready), slow.ready]);
      figures.sustained[k] = 0;
      let keptRate = 0;
      for (const rate of o.rates) {
        const r = await step(relay, rest, subs, sentAt, rate, hosts, o);
        figures.steps.push({ subscribers: k, ...r });
        log(
          `  K=${k} offered ${rate}/s: published ${r.published}/s, delivered ${r.deliveredMin}–${r.deliveredMax}/s, p50 ${ms(r.latency.p50)} ms, p99 ${ms(r.latency.p99)} ms, workerd ${r.workerdCpuPerEvent} ms/event${r.keptUp ? "" : " (not kept up)"}`,
        );
        if (!r.keptUp) break;
        figures.sustained[k] = r.published;
        keptRate = rate;
      }
      // Past its budget for certain, however little the steps published; then it reads again and sees how it ended.
      await burst(rest, Math.ceil(SEND_BUDGET_BYTES / 200));
      figures.slowSubscriber[k] = await slow.drain(10_000);
      // The control: the middle K, at the highest rate it kept up with, once more without the slow one.
      if (k === o.subscribers[Math.floor(o.subscribers.length / 2)] && keptRate > 0) {
        const rate = keptRate;
        const withSlow = figures.steps.find((s) => s.subscribers === k && s.offered === rate)!.latency;
        const without = await step(relay, rest, subs, sentAt, rate, hosts, o);
        figures.control = { subscribers: k, rate, withSlow, withoutSlow: without.latency };
      }
      for (const s of subs) s.close();
    }
  } finally {
    rest.close();
    await relay.stop();
    await rm(stateDir, { recursive: true, force: true });
  }
  return figures;
}

function intList(name: string): number[] | undefined {
  const v = process.env[name];
  return v ? v.split(",").map((s) => Number.parseInt(s.trim(), 10)) : undefined;
}

function print(f: EventsFigures): void {
  const rows = f.steps.map((s) => [
    String(s.subscribers),
    String(s.offered),
    String(s.published),
    `${s.deliveredMin}–${s.deliveredMax}`,
    ms(s.latency.p50),
    ms(s.latency.p99),
    s.workerdCpuPerEvent.toFixed(3),
    s.keptUp ? "yes" : "no",
  ]);
  const filter = f.steps[0]?.filterHosts ? `each following ${f.steps[0].filterHosts} of 100 hosts` : "no filter";
  console.log(`Live events: one FleetEvents object, K subscribers (${filter}) + 1 that never reads (no filter)`);
  console.log(table(["K", "offered/s", "published/s", "delivered/s each", "p50 ms", "p99 ms", "workerd ms/event", "kept up"], rows));
  console.log("");
  for (const [k, v] of Object.entries(f.sustained)) {
    console.log(`  K=${k}: sustained ${v} events/s; the slow subscriber's stream ended with ${f.slowSubscriber[Number(k)]}`);
  }
  if (f.control) {
    const c = f.control;
    console.log(
      `  slow subscriber's effect on the others (K=${c.subscribers}, ${c.rate}/s): p50 ${ms(c.withSlow.p50)} / p99 ${ms(c.withSlow.p99)} ms with it, ${ms(c.withoutSlow.p50)} / ${ms(c.withoutSlow.p99)} ms without (after it was closed)`,
    );
  }
}

if (import.meta.main) {
  const figures = await benchEvents({
    subscribers: intList("BENCH_EVENTS_SUBSCRIBERS"),
    rates: intList("BENCH_EVENTS_RATES"),
    stepSeconds: intList("BENCH_EVENTS_STEP_S")?.[0],
    batch: intList("BENCH_EVENTS_BATCH")?.[0],
    filterHosts: intList("BENCH_EVENTS_FILTER_HOSTS")?.[0],
    log: (l) => console.log(l),
  });
  print(figures);
}
