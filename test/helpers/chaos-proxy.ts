/**
 * A TCP proxy that breaks connections on purpose, for fault tests: it listens on an ephemeral
 * port, pipes every connection to `target` byte for byte (TLS passes through untouched, so the
 * client still verifies the real server's certificate and presents its own), and while cutting
 * is on it kills each connection after a random lifetime or a random number of bytes, whichever
 * comes first — mid-record, with a FIN or an RST at random.
 *
 * Cutting is bounded: it stops by itself after `cutForMs`, or when `stopCutting()` is called;
 * from then on connections (old and new) are left alone. `cutFor(ms)` starts another bounded
 * spell of cutting, on open connections and new ones alike (the soak's fault windows).
 *
 * It can also hold one direction (`hold("up")`: client → target bytes are buffered, not sent)
 * and `release()` them later, intact: a link that stalls one way without breaking TLS.
 */
import net from "node:net";

export interface ChaosProxyOptions {
  target: { host: string; port: number };
  /** Random lifetime of a connection while cutting, ms. Default 50–400. */
  minLifeMs?: number;
  maxLifeMs?: number;
  /** Random byte budget (both directions together) of a connection while cutting. Default 4 KiB–64 KiB. */
  minBytes?: number;
  maxBytes?: number;
  /** Cutting stops by itself after this long (0: never cut). Default 60 s. */
  cutForMs?: number;
  /** Seed of the random choices, so a failing run can be replayed. Default: random. */
  seed?: number;
  /** Called once per connection when it ends (diagnostics). */
  onConnectionEnd?(info: ConnectionInfo): void;
}

export interface ConnectionInfo {
  id: number;
  openedAt: number;
  lifeMs: number;
  /** Bytes client → target and target → client. */
  up: number;
  down: number;
  /** Why the proxy killed it; null when an end closed it. */
  cut: "time" | "bytes" | null;
}

export interface ChaosStats {
  connections: number;
  /** Connections the proxy killed. */
  cuts: number;
  cutsByTime: number;
  cutsByBytes: number;
  /** Of the cuts, how many were RSTs (the rest were FINs). */
  resets: number;
  bytes: number;
}

export interface ChaosProxy {
  /** `https://127.0.0.1:<port>`: where clients connect instead of the target. */
  url: string;
  port: number;
  seed: number;
  readonly cutting: boolean;
  stats(): ChaosStats;
  /** No more cuts, on open or new connections. */
  stopCutting(): void;
  /** Cuts again, open connections and new ones, for `ms` (then stops by itself, as at the start). */
  cutFor(ms: number): void;
  /** Buffers every byte going `up` (client → target) or `down` from now on, on every connection. */
  hold(direction: "up" | "down"): void;
  /** Sends what was held, in order, and stops holding. */
  release(): void;
  /** Closes the listener and every connection. */
  close(): Promise<void>;
}

/** mulberry32: a tiny seeded PRNG, good enough for choosing lifetimes (and the soak's fault schedule). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export async function startChaosProxy(opts: ChaosProxyOptions): Promise<ChaosProxy> {
  const minLife = opts.minLifeMs ?? 50;
  const maxLife = opts.maxLifeMs ?? 400;
  const minBytes = opts.minBytes ?? 4096;
  const maxBytes = opts.maxBytes ?? 65_536;
  const seed = opts.seed ?? Math.floor(Math.random() * 2 ** 31);
  const random = prng(seed);
  const between = (lo: number, hi: number) => lo + Math.floor(random() * (hi - lo + 1));

  const stats: ChaosStats = { connections: 0, cuts: 0, cutsByTime: 0, cutsByBytes: 0, resets: 0, bytes: 0 };
  let cutting = (opts.cutForMs ?? 60_000) > 0;
  let holding: "up" | "down" | null = null;
  const pairs = new Set<{ arm(): void; disarm(): void; destroy(): void; flush(): void }>();

  const server = net.createServer({ noDelay: true }, (client) => {
    stats.connections++;
    const info: ConnectionInfo = { id: stats.connections, openedAt: Date.now(), lifeMs: 0, up: 0, down: 0, cut: null };
    const upstream = net.connect({ host: opts.target.host, port: opts.target.port, noDelay: true });
    let budget = cutting ? between(minBytes, maxBytes) : Infinity;
    let dead = false;
    let timer: NodeJS.Timeout | undefined;

    let reported = false;
    const report = () => {
      if (reported) return;
      reported = true;
      info.lifeMs = Date.now() - info.openedAt;
      opts.onConnectionEnd?.(info);
    };
    const destroy = () => {
      if (dead) return;
      dead = true;
      clearTimeout(timer);
      client.destroy();
      upstream.destroy();
      pairs.delete(pair);
      report();
    };
    const cut = (why: "time" | "bytes") => {
      if (dead || !cutting) return;
      stats.cuts++;
      info.cut = why;
      if (why === "time") stats.cutsByTime++;
      else stats.cutsByBytes++;
      // Half the cuts are RSTs (a crashed middlebox), half FINs (an orderly but unexpected close).
      if (random() < 0.5) {
        stats.resets++;
        dead = true;
        clearTimeout(timer);
        pairs.delete(pair);
        for (const s of [client, upstream]) {
          if (typeof s.resetAndDestroy === "function" && s.readyState !== "opening") s.resetAndDestroy();
          else s.destroy();
        }
        report();
      } else {
        destroy();
      }
    };
    const held: Record<"up" | "down", Buffer[]> = { up: [], down: [] };
    const pair = {
      arm() {
        if (dead) return;
        budget = between(minBytes, maxBytes);
        clearTimeout(timer);
        timer = setTimeout(() => cut("time"), between(minLife, maxLife));
      },
      disarm() {
        budget = Infinity;
        clearTimeout(timer);
      },
      destroy,
      flush() {
        if (dead) return;
        if (held.up.length) upstream.write(Buffer.concat(held.up.splice(0)));
        if (held.down.length) client.write(Buffer.concat(held.down.splice(0)));
      },
    };
    pairs.add(pair);
    if (cutting) timer = setTimeout(() => cut("time"), between(minLife, maxLife));

    const forward = (from: net.Socket, to: net.Socket, dir: "up" | "down") => {
      from.on("data", (chunk: Buffer) => {
        if (dead) return;
        if (cutting && chunk.length >= budget) {
          // Deliver only part of this chunk, then kill the connection: a cut in the middle of a record.
          const part = chunk.subarray(0, budget);
          stats.bytes += part.length;
          info[dir] += part.length;
          budget = 0;
          if (part.length > 0) to.write(part);
          cut("bytes");
          return;
        }
        budget -= chunk.length;
        stats.bytes += chunk.length;
        info[dir] += chunk.length;
        if (holding === dir || held[dir].length > 0) {
          held[dir].push(chunk);
          return;
        }
        if (!to.write(chunk)) {
          from.pause();
          to.once("drain", () => from.resume());
        }
      });
      from.on("end", () => to.end());
      from.on("error", destroy);
      from.on("close", destroy);
    };
    forward(client, upstream, "up");
    forward(upstream, client, "down");
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as net.AddressInfo).port;

  const stopCutting = () => {
    cutting = false;
    clearTimeout(selfStop);
    for (const p of pairs) p.disarm();
  };
  let selfStop = setTimeout(stopCutting, opts.cutForMs ?? 60_000);
  selfStop.unref();
  const cutFor = (ms: number) => {
    clearTimeout(selfStop);
    cutting = ms > 0;
    if (!cutting) return;
    for (const p of pairs) p.arm();
    selfStop = setTimeout(stopCutting, ms);
    selfStop.unref();
  };
  const release = () => {
    holding = null;
    for (const p of pairs) p.flush();
  };

  return {
    url: `https://127.0.0.1:${port}`,
    port,
    seed,
    get cutting() {
      return cutting;
    },
    stats: () => ({ ...stats }),
    stopCutting,
    cutFor,
    hold: (direction) => {
      holding = direction;
    },
    release,
    close: () =>
      new Promise<void>((resolve) => {
        stopCutting();
        for (const p of [...pairs]) p.destroy();
        server.close(() => resolve());
      }),
  };
}
