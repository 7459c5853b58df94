/**
 * The dashboard's alerts, audit, overview charts and job progress in a real browser (chromium via
 * playwright-core, helpers shared with dashboard.test.ts), against the real local relay with its
 * built dashboard and a real enrolled agent. The relay evaluates alert rules every 0.5 s (as
 * test/e2e/alerts.test.ts does) so a killed agent alerts within seconds. One page stays open through
 * the alert scenario, so what it shows arrives live, not by reload. Waits are bounded waits on
 * selectors, REST state or a receiver's request; never sleeps.
 */
import { readFile } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureDashboardBuilt } from "../../scripts/dashboard-build.ts";
import { signDevToken } from "../../scripts/dev-token.ts";
import { readJwtSecret } from "../../scripts/jwt-secret.ts";
import type { LocalRelay } from "../../scripts/local-relay.ts";
import { type AgentChild, spawnAgentCli } from "../helpers/agent-cli.ts";
import { HAVE_CHROMIUM, launchChromium, nav, screenshots, signedInPage, skipNote, stillSamePage } from "../helpers/dashboard-browser.ts";
import { enrollAgent, type RelayFixture, startRelayFixture } from "../helpers/relay-fixture.ts";
import { type RelayRest, waitUntil } from "../helpers/relay-rest.ts";

skipNote("dashboard observability browser test");

const TAG = "obs";
const RULE = "E2EHostDown";
const SECRET = "dashboard-e2e-secret-0123456789";

let fx: RelayFixture | undefined;
let relay: LocalRelay | undefined;
let rest: RelayRest;
let viewerToken: string;
let agentDir: string;
let agent: AgentChild | undefined;
let hostId: string;
let browser: Browser | undefined;
let receiver: http.Server | undefined;
let receiverUrl: string;
const received: { status: string }[] = [];

const runAgent = () => spawnAgentCli(["run", "--state-dir", agentDir, "--reconnect-base", "50ms", "--reconnect-cap", "300ms"]);

beforeAll(async () => {
  if (!HAVE_CHROMIUM) return;
  await ensureDashboardBuilt();
  fx = await startRelayFixture("dash-obs", { bindings: { ALERT_EVAL_INTERVAL_S: "0.5" } });
  ({ relay, rest } = fx);
  agentDir = path.join(fx.workDir, "agent");
  viewerToken = await signDevToken({
    secret: (await readJwtSecret(fx.relayDir))!,
    role: "viewer",
    ttlSeconds: 3600,
    sub: "e2e-viewer",
    issuer: "fleet-relay",
    audience: "fleet-relay-api",
  });

  // A plain-http receiver on loopback (the local relay allows that): proves the UI-made receiver is used.
  receiver = http.createServer((req, res) => {
    let body = "";
    req.on("data", (d: Buffer) => {
      body += d.toString();
    });
    req.on("end", () => {
      received.push(JSON.parse(body) as { status: string });
      res.writeHead(200).end("ok");
    });
  });
  await new Promise<void>((resolve) => receiver!.listen(0, "127.0.0.1", resolve));
  receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;

  ({ hostId } = await enrollAgent(fx, { stateDir: agentDir, hostname: "obs-1", tags: [TAG] }));
  agent = runAgent();
  await rest.waitForHostStatus(hostId, "online", 30_000);
  browser = await launchChromium();
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await agent?.kill();
  await fx?.stop();
  await new Promise((resolve) => (receiver ? receiver.close(resolve) : resolve(undefined)));
}, 60_000);

async function fill(page: Page, form: string, fields: Record<string, string>): Promise<void> {
  const f = page.getByRole("form", { name: form });
  // Anchored at the start: a field's label also holds its error message once the API answered one.
  for (const [label, value] of Object.entries(fields)) await f.getByLabel(new RegExp(`^${label}`)).fill(value);
}

describe.skipIf(!HAVE_CHROMIUM)("dashboard observability in chromium", () => {
  it("an admin makes a host_offline rule and a receiver in the UI; killing the agent shows the alert live, its return resolves it; edit and delete", async () => {
    const page = await signedInPage(browser!, relay!.url, rest.admin);
    await nav(page, "Alerts");
    await page.getByRole("table", { name: "Active alerts" }).waitFor();

    // Receiver: the secret goes in, and only "secret set" comes back.
    await page.getByRole("button", { name: "New receiver" }).click();
    await fill(page, "New receiver", { Name: "e2e-hook", URL: receiverUrl, Secret: SECRET });
    await page.getByRole("button", { name: "Create receiver" }).click();
    const receiverRow = page.getByRole("table", { name: "Receivers" }).locator("tr", { hasText: "e2e-hook" });
    await receiverRow.getByText("secret set", { exact: true }).waitFor();
    expect(await page.content()).not.toContain(SECRET);

    // Rule: a bad duration first, answered next to its field from the problem's errors.
    await page.getByRole("button", { name: "New rule" }).click();
    const form = page.getByRole("form", { name: "New rule" });
    await form.getByLabel("Kind").selectOption("host_offline");
    await fill(page, "New rule", { Name: RULE, For: "5 minutes", "Only hosts tagged": TAG });
    await page.getByRole("button", { name: "Create rule" }).click();
    await form
      .locator('[data-field="for"]')
      .getByText(/duration/)
      .waitFor();
    await fill(page, "New rule", { For: "0s" });
    await page.getByRole("button", { name: "Create rule" }).click();
    await page.getByRole("table", { name: "Alert rules" }).locator("tr", { hasText: RULE }).waitFor();
    await expect(page.getByRole("form", { name: "New rule" }).count()).resolves.toBe(0);

    agent!.child.kill("SIGKILL");
    await agent!.exit(10_000);
    const firing = page.getByRole("table", { name: "Active alerts" }).locator(`tr[data-alertname="${RULE}"]`);
    await firing.getByText("firing", { exact: true }).waitFor();
    await expect(firing.textContent()).resolves.toContain("obs-1");
    await screenshots(page, "alerts-firing");
    await waitUntil(() => received.find((r) => r.status === "firing"), { timeoutMs: 20_000, what: "the receiver's firing notification" });

    agent = runAgent();
    await page.getByRole("table", { name: "Resolved alerts" }).locator("tr", { hasText: RULE }).waitFor();
    await expect(firing.count()).resolves.toBe(0);
    expect(await stillSamePage(page)).toBe(true);
    await rest.waitForHostStatus(hostId, "online", 30_000);

    // Edit keeps the kind and replaces the rest; a receiver edit without a new secret keeps it.
    await page.getByRole("button", { name: `Edit rule ${RULE}` }).click();
    await fill(page, "Edit rule", { "Repeat interval": "1h" });
    await page.getByRole("button", { name: "Save rule" }).click();
    await page.getByRole("table", { name: "Alert rules" }).locator("tr", { hasText: "repeat 1h" }).waitFor();
    await page.getByRole("button", { name: "Edit receiver e2e-hook" }).click();
    await fill(page, "Edit receiver", { URL: "ftp://example.com/hook" });
    await page.getByRole("button", { name: "Save receiver" }).click();
    await page.getByRole("form", { name: "Edit receiver" }).locator('[data-field="url"]').waitFor();
    await page.getByRole("form", { name: "Edit receiver" }).getByRole("button", { name: "Cancel" }).click();
    const rcv = (await rest.request("GET", "/api/alert-receivers", undefined, rest.admin)).body.items[0];
    expect(rcv).toMatchObject({ name: "e2e-hook", url: receiverUrl, has_secret: true });

    // Delete asks once more.
    await page.getByRole("button", { name: "New rule" }).click();
    await fill(page, "New rule", { Name: "Scratch" });
    await page.getByRole("form", { name: "New rule" }).getByLabel("Kind").selectOption("dead_letters");
    await page.getByRole("button", { name: "Create rule" }).click();
    await page.getByRole("button", { name: "Delete rule Scratch" }).click();
    await page.getByRole("button", { name: "Confirm delete" }).click();
    await expect
      .poll(() => page.getByRole("table", { name: "Alert rules" }).locator("tr", { hasText: "Scratch" }).count(), { timeout: 10_000 })
      .toBe(0);
    await page.close();
  }, 90_000);

  it("the audit page lists the command just sent, exports NDJSON, and verifies the chain in the browser", async () => {
    const messageId = await rest.send(hostId, { command_type: "system_info", parameters: {} });
    // The record joins the chain after the response (waitUntil): wait for it over REST, then look in the UI.
    await waitUntil(
      async () =>
        (await rest.request("GET", `/api/audit?host_id=${hostId}&action=command.create`, undefined, rest.admin)).body.items?.length > 0,
      { timeoutMs: 15_000, what: "the command's audit record" },
    );
    const page = await signedInPage(browser!, relay!.url, rest.admin, "/audit");
    const filters = page.getByRole("form", { name: "Audit filters" });
    await filters.getByLabel("Host id").fill(hostId);
    await filters.getByLabel("Action").fill("command.create");
    await filters.getByRole("button", { name: "Apply" }).click();
    await page.waitForURL(/host_id=/);
    const row = page.locator(`tr[data-action="command.create"][data-message-id="${messageId}"]`);
    await row.waitFor();
    await expect(row.textContent()).resolves.toContain("operator");

    const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Export NDJSON" }).click()]);
    const text = await readFile((await download.path())!, "utf8");
    expect(JSON.parse(text.split("\n")[0]!)).toMatchObject({ type: "export" });
    expect(text).toContain(messageId);

    await page.getByRole("button", { name: "Verify chain" }).click();
    const result = page.getByTestId("verify-result");
    await result.waitFor();
    await expect(result.getAttribute("data-ok")).resolves.toBe("true");
    await expect(result.textContent()).resolves.toMatch(/^OK: [1-9]\d* records/);
    expect(await page.getByRole("table", { name: "Shards" }).locator("tbody tr").count()).toBeGreaterThan(0);
    await screenshots(page, "audit-verified");
    await page.close();
  }, 60_000);

  it("the overview draws the last hour from /api/metrics with uPlot, and its charts move after a command", async () => {
    const page = await signedInPage(browser!, relay!.url, rest.operator, "/");
    const perState = page.getByRole("figure", { name: "Commands per state per minute" });
    const latency = page.getByRole("figure", { name: "Delivery latency p50 and p99 per minute" });
    const online = page.getByRole("figure", { name: "Online hosts per minute" });
    for (const fig of [perState, latency, online]) await fig.locator("canvas").first().waitFor();
    const sumOf = async () => Number(await perState.getAttribute("data-sum"));
    const before = await sumOf();
    await expect(page.getByTestId("dead-letters").textContent()).resolves.toMatch(/^\d+$/);
    await expect(page.getByTestId("queue-depth").textContent()).resolves.toMatch(/^\d+$/);
    await expect(page.getByTestId("active-alerts").textContent()).resolves.toBe("0");
    // Host counts are the registry's, from /api/metrics: the connected agent's host is online.
    await expect.poll(async () => Number(await page.getByTestId("count-online").textContent()), { timeout: 10_000 }).toBeGreaterThan(0);

    const messageId = await rest.send(hostId, { command_type: "system_info", parameters: {} });
    await rest.waitForCommand(hostId, messageId);
    // The page re-reads /api/metrics after the command's events (or on its 15 s timer): the chart moves without a reload.
    await expect.poll(sumOf, { timeout: 30_000, interval: 200 }).toBeGreaterThan(before);
    await expect.poll(async () => Number(await latency.getAttribute("data-points")), { timeout: 30_000, interval: 200 }).toBeGreaterThan(0);
    expect(Number(await online.getAttribute("data-sum"))).toBeGreaterThan(0);
    await screenshots(page, "overview");
    expect(await stillSamePage(page)).toBe(true);
    await page.close();
  }, 60_000);

  it("a viewer sees the alerts and their history but no rule or receiver controls, and no audit trail", async () => {
    const page = await signedInPage(browser!, relay!.url, viewerToken, "/alerts");
    await page.getByRole("table", { name: "Resolved alerts" }).locator("tr", { hasText: RULE }).waitFor();
    for (const name of ["New rule", "New receiver", /^Edit/, /^Delete/]) {
      await expect(page.getByRole("button", { name }).count()).resolves.toBe(0);
    }
    await expect(page.getByRole("table", { name: "Alert rules" }).count()).resolves.toBe(0);
    await nav(page, "Audit");
    await page.getByText("The audit trail is for admins.").waitFor();
    await expect(page.getByRole("button", { name: "Verify chain" }).count()).resolves.toBe(0);
    await page.close();
  });

  it("creates a job by tag in the UI and watches its counts and completion bar reach 100% live", async () => {
    const page = await signedInPage(browser!, relay!.url, rest.operator, "/jobs");
    const form = page.getByRole("form", { name: "New job" });
    await form.getByRole("textbox", { name: "Tags" }).fill(TAG);
    await form.getByLabel("Command").selectOption("system_info");
    await form.getByRole("button", { name: "Start job" }).click();
    await page.getByRole("heading", { name: /^Job / }).waitFor();
    await page.getByTestId("job-completion").getByText("100%").waitFor();
    await page.locator('ul[aria-label="Hosts per state"] li[data-state="succeeded"]', { hasText: /\b1$/ }).waitFor();
    await page.getByTestId("job-state").getByText("completed", { exact: true }).waitFor();
    await expect(page.getByRole("progressbar", { name: "Completion" }).getAttribute("aria-valuenow")).resolves.toBe("100");
    expect(await stillSamePage(page)).toBe(true);
    await page.close();
  }, 60_000);
});
