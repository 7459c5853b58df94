/**
 * Cold load of the dashboard's hosts page with many registered hosts: a fresh relay (workerd via
 * Miniflare, the built dashboard as its assets), `BENCH_DASHBOARD_HOSTS` hosts registered through
 * `POST /api/hosts`, then Debian's chromium (playwright-core) opening `/hosts` in a new, cache-less
 * browser context each time, already holding a token (as a signed-in tab does after a reload).
 *
 *   npm run bench:dashboard                      (10,000 hosts, 5 cold loads)
 *   BENCH_DASHBOARD_HOSTS=1000 BENCH_DASHBOARD_LOADS=3 npm run bench:dashboard
 *
 * Times are the page's own (performance.now() from navigation start, marked by a MutationObserver),
 * so Playwright's polling adds nothing. Prints figures; asserts nothing about time.
 */
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { Browser } from "playwright-core";
import { ensureDashboardBuilt } from "../scripts/dashboard-build.ts";
import { signDevToken } from "../scripts/dev-token.ts";
import { readJwtSecret } from "../scripts/jwt-secret.ts";
import { startLocalRelay } from "../scripts/local-relay.ts";
import { HAVE_CHROMIUM, launchChromium } from "../test/helpers/dashboard-browser.ts";
import { RestClient } from "./rest.ts";
import { summarize } from "./stats.ts";

export interface HostsPageLoad {
  /** Navigation start → the first page of rows in the table. */
  firstRowsMs: number;
  /** Navigation start → the count line ("200 hosts, more on scroll") is shown. */
  countShownMs: number;
  /** The first `GET /api/hosts` page as the browser timed it (request start → last byte). */
  hostsRequestMs: number;
  /** Bytes of JavaScript the page loaded (transfer size, compressed as served). */
  jsTransferBytes: number;
  /** `<tr>` elements in the table: the virtualised window, not the whole list. */
  domRows: number;
}

export interface DashboardLoadFigures {
  hosts: number;
  registerSeconds: number;
  loads: HostsPageLoad[];
  /** Scrolling to the end of the table, loading every page of hosts. */
  scrollAll: { ms: number; rowsLoaded: number; domRows: number } | null;
}

/** In-page marks and the scroll step (browser JS). */
const MARKS = path.join(import.meta.dirname, "dashboard-marks.js");
type PageGlobals = {
  __marks: { rows?: number; count?: number };
  __scrollToEnd: (total: number) => boolean;
  __domRows: () => number;
};

async function pool<T>(count: number, limit: number, fn: (i: number) => Promise<T>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, count) }, async () => {
      for (let i = next++; i < count; i = next++) await fn(i);
    }),
  );
}

function fingerprint(i: number): string {
  return (i.toString(16).padStart(8, "0") + "f".repeat(56)).slice(0, 64);
}

export async function measureDashboardLoad(opts: {
  hosts: number;
  loads: number;
  scroll?: boolean;
  browser?: Browser;
  log?: (line: string) => void;
}): Promise<DashboardLoadFigures> {
  const log = opts.log ?? (() => {});
  const stateDir = await mkdtemp(path.join(os.tmpdir(), "fleet-bench-dashboard-"));
  await ensureDashboardBuilt();
  const relay = await startLocalRelay({ port: 0, edgePort: null, stateDir, quiet: true });
  const browser = opts.browser ?? (await launchChromium());
  try {
    const secret = (await readJwtSecret(stateDir))!;
    const sign = (role: "admin" | "viewer") => signDevToken({ secret, role, ttlSeconds: 7200, sub: `bench-${role}` });
    const admin = await sign("admin");
    const viewer = await sign("viewer");
    const rest = new RestClient(relay.url, admin, 32);
    const t = performance.now();
    await pool(opts.hosts, 16, (i) =>
      rest.json(
        "POST",
        "/api/hosts",
        {
          hostname: `web-${String(i).padStart(5, "0")}`,
          cert_fingerprint_sha256: fingerprint(i),
          tags: [i % 2 ? "web" : "db", `rack-${i % 40}`],
        },
        201,
      ),
    );
    const registerSeconds = (performance.now() - t) / 1000;
    rest.close();
    log(`registered ${opts.hosts} hosts in ${registerSeconds.toFixed(1)} s`);

    const loads: HostsPageLoad[] = [];
    let scrollAll: DashboardLoadFigures["scrollAll"] = null;
    for (let n = 0; n < opts.loads; n++) {
      // A new context: no HTTP cache, no service worker, nothing warm in the browser.
      const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
      await context.addInitScript((token: string) => sessionStorage.setItem("fleet-relay.token", token), viewer);
      await context.addInitScript({ path: MARKS });
      const page = await context.newPage();
      page.setDefaultTimeout(60_000);
      await page.goto(`${relay.url}/hosts`);
      await page.locator("tr[data-host-id]").first().waitFor();
      await page.waitForFunction(() => (globalThis as unknown as PageGlobals).__marks.count !== undefined);
      // Runs in the page: only the type refers to this module.
      const load = await page.evaluate(() => {
        const g = globalThis as unknown as PageGlobals;
        const resources = performance.getEntriesByType("resource") as unknown as {
          name: string;
          requestStart: number;
          responseEnd: number;
          transferSize: number;
        }[];
        const hosts = resources.find((r) => new URL(r.name).pathname === "/api/hosts");
        return {
          firstRowsMs: g.__marks.rows!,
          countShownMs: g.__marks.count!,
          hostsRequestMs: hosts ? hosts.responseEnd - hosts.requestStart : Number.NaN,
          jsTransferBytes: resources.filter((r) => r.name.endsWith(".js")).reduce((s, r) => s + r.transferSize, 0),
          domRows: g.__domRows(),
        };
      });
      loads.push(load);
      log(
        `cold load ${n + 1}: rows at ${load.firstRowsMs.toFixed(0)} ms, count at ${load.countShownMs.toFixed(0)} ms, ` +
          `GET /api/hosts ${load.hostsRequestMs.toFixed(0)} ms, ${load.domRows} rows in the DOM`,
      );
      if (n === opts.loads - 1 && opts.scroll) {
        const start = await page.evaluate(() => performance.now());
        // Scroll the table's viewport to its end, step by step, until every page is loaded.
        await page.waitForFunction((total: number) => (globalThis as unknown as PageGlobals).__scrollToEnd(total), opts.hosts, {
          polling: 50,
          timeout: 120_000,
        });
        const end = await page.evaluate(() => ({ at: performance.now(), dom: (globalThis as unknown as PageGlobals).__domRows() }));
        scrollAll = { ms: end.at - start, rowsLoaded: opts.hosts, domRows: end.dom };
        log(`scrolled to the end: ${opts.hosts} rows loaded in ${(end.at - start).toFixed(0)} ms, ${end.dom} rows in the DOM`);
      }
      await context.close();
    }
    return { hosts: opts.hosts, registerSeconds, loads, scrollAll };
  } finally {
    if (!opts.browser) await browser.close();
    await relay.stop();
    await rm(stateDir, { recursive: true, force: true });
  }
}

if (import.meta.main) {
  if (!HAVE_CHROMIUM) {
    console.log("SKIP dashboard load: no chromium (apt-get install chromium)");
    process.exit(0);
  }
  const hosts = Number(process.env.BENCH_DASHBOARD_HOSTS ?? 10_000);
  const loads = Number(process.env.BENCH_DASHBOARD_LOADS ?? 5);
  const f = await measureDashboardLoad({ hosts, loads, scroll: true, log: (l) => console.log(l) });
  const rows = f.loads.map((l) => l.firstRowsMs);
  const counts = f.loads.map((l) => l.countShownMs);
  console.log("");
  console.log(`hosts page, cold, ${f.hosts} registered hosts, ${f.loads.length} loads (each in a new browser context):`);
  console.log(
    `  first rows shown   p50 ${summarize(rows).p50.toFixed(0)} ms   max ${Math.max(...rows).toFixed(0)} ms   (target ≤ 1000 ms)`,
  );
  console.log(`  host count shown   p50 ${summarize(counts).p50.toFixed(0)} ms   max ${Math.max(...counts).toFixed(0)} ms`);
  console.log(`  GET /api/hosts     p50 ${summarize(f.loads.map((l) => l.hostsRequestMs)).p50.toFixed(0)} ms (first page of 200)`);
  console.log(`  JS transferred     ${(f.loads[0]!.jsTransferBytes / 1024).toFixed(1)} KiB   rows in the DOM ${f.loads[0]!.domRows}`);
  if (f.scrollAll) {
    console.log(
      `  scroll to the end  ${f.scrollAll.rowsLoaded} rows loaded in ${(f.scrollAll.ms / 1000).toFixed(1)} s, ${f.scrollAll.domRows} rows in the DOM`,
    );
  }
}
