/**
 * What the dashboard's browser tests share: Debian's chromium through playwright-core with the
 * flags a closed network needs, and a page signed in with a pasted token, carrying the probe
 * (dashboard-probe.js) that records event → DOM timings and keeps the page's sockets reachable.
 */
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { type Browser, chromium, type Page } from "playwright-core";

export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
export const HAVE_CHROMIUM = existsSync(CHROMIUM);

/** The flags a closed network needs: no GPU, no sandbox (root in CI), nothing phoning home. */
export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-dev-shm-usage",
];
export const UI_TIMEOUT = 30_000;
/** In-page script (browser JS, so kept out of the Node type check): event → DOM timings, socket handles. */
const PROBE = path.join(import.meta.dirname, "dashboard-probe.js");

export function skipNote(what: string): void {
  if (!HAVE_CHROMIUM) console.log(`SKIP ${what}: no chromium at ${CHROMIUM} (apt-get install chromium; .ci/run does)`);
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 60_000 });
}

/** Opens `at` (a dashboard path: the sign-in comes first on any of them) on `url` and signs in with `token`. */
export async function signedInPage(browser: Browser, url: string, token: string, at = "/"): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
  page.setDefaultTimeout(UI_TIMEOUT);
  await page.addInitScript({ path: PROBE });
  await page.goto(`${url}${at}`);
  await page.getByText("npm run token -- --role operator").waitFor();
  await page.getByLabel("API token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.locator('[data-testid="connection"][data-status="live"]').waitFor();
  // Set once; a full reload would lose it, so its survival proves updates came without one.
  await page.evaluate(() => {
    (globalThis as unknown as { __noReload: boolean }).__noReload = true;
  });
  return page;
}

export async function stillSamePage(page: Page): Promise<boolean> {
  return page.evaluate(() => (globalThis as unknown as { __noReload?: boolean }).__noReload === true);
}

/** Follows a link in the main navigation: the router's pushState, never a reload. */
export async function nav(page: Page, name: string): Promise<void> {
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name }).click();
}

/**
 * With DASHBOARD_ARTIFACTS=<dir>, saves the page at 1280 px and 390 px wide (full page) as
 * `<name>-1280.png` and `<name>-390.png` there; without it, nothing.
 */
export async function screenshots(page: Page, name: string): Promise<void> {
  const dir = process.env.DASHBOARD_ARTIFACTS;
  if (!dir) return;
  await mkdir(dir, { recursive: true });
  const size = page.viewportSize();
  for (const width of [1280, 390]) {
    await page.setViewportSize({ width, height: 900 });
    await page.screenshot({ path: path.join(dir, `${name}-${width}.png`), fullPage: true });
  }
  if (size) await page.setViewportSize(size);
}
