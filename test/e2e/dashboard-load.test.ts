/**
 * A reduced run of the hosts-page cold-load benchmark (bench/dashboard-load.ts; its full run is
 * `npm run bench:dashboard`, 10,000 hosts), so the path does not rot: a fresh relay with 300
 * registered hosts, one cold load in chromium and a scroll to the end. Asserts what the page did,
 * never how long it took.
 */
import { describe, expect, it } from "vitest";
import { measureDashboardLoad } from "../../bench/dashboard-load.ts";
import { HAVE_CHROMIUM, skipNote } from "../helpers/dashboard-browser.ts";

skipNote("dashboard load test");
const HOSTS = 300;

describe.skipIf(!HAVE_CHROMIUM)("hosts page cold load (reduced)", () => {
  it(`loads the first page of ${HOSTS} hosts into a virtualised table and scrolls through every page`, async () => {
    const f = await measureDashboardLoad({ hosts: HOSTS, loads: 1, scroll: true });
    expect(f.loads).toHaveLength(1);
    const [load] = f.loads;
    // The marks were taken in order, in the page's own clock.
    expect(load!.firstRowsMs).toBeGreaterThan(0);
    expect(load!.countShownMs).toBeGreaterThanOrEqual(load!.firstRowsMs);
    expect(Number.isFinite(load!.hostsRequestMs)).toBe(true);
    expect(load!.jsTransferBytes).toBeGreaterThan(10_000);
    // Virtualised: a window of rows, not one per host, before and after every page is loaded.
    expect(load!.domRows).toBeGreaterThan(5);
    expect(load!.domRows).toBeLessThan(60);
    expect(f.scrollAll?.rowsLoaded).toBe(HOSTS);
    expect(f.scrollAll!.domRows).toBeLessThan(60);
  }, 180_000);
});
