/**
 * A small REST client for the local relay in end-to-end tests: tokens signed with the relay's own
 * secret, JSON requests, and bounded polling on REST state (never sleeps as synchronisation).
 */
import { signDevToken } from "../../scripts/dev-token.ts";
import { readJwtSecret } from "../../scripts/jwt-secret.ts";

export interface Reply<T = any> {
  status: number;
  headers: Headers;
  body: T;
}

export const TERMINAL = new Set(["succeeded", "failed", "timed_out", "expired", "cancelled", "dead_lettered"]);

/**
 * Polls `probe` until it returns something other than undefined, at most `timeoutMs`.
 * `describe` explains the last seen state in the failure message.
 */
export async function waitUntil<T>(
  probe: () => Promise<T | undefined> | T | undefined,
  opts: { timeoutMs?: number; intervalMs?: number; what: string; describe?: () => string },
): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 15_000;
  const intervalMs = opts.intervalMs ?? 50;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const extra = opts.describe ? `; last: ${opts.describe()}` : "";
      const why = lastError ? `; last error: ${(lastError as Error).message}` : "";
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${opts.what}${extra}${why}`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

export class RelayRest {
  readonly url: string;
  readonly admin: string;
  readonly operator: string;

  private constructor(url: string, admin: string, operator: string) {
    this.url = url;
    this.admin = admin;
    this.operator = operator;
  }

  /** Tokens from `<stateDir>/jwt-secret`, valid for 2 h (they survive relay restarts on the same state dir). */
  static async create(url: string, stateDir: string): Promise<RelayRest> {
    const secret = await readJwtSecret(stateDir);
    if (!secret) throw new Error(`no JWT secret in ${stateDir}`);
    const sign = (role: "admin" | "operator") =>
      signDevToken({ secret, role, ttlSeconds: 7200, sub: `e2e-${role}`, issuer: "fleet-relay", audience: "fleet-relay-api" });
    return new RelayRest(url, await sign("admin"), await sign("operator"));
  }

  /** Same tokens, another base URL (a relay restarted on a new port). */
  at(url: string): RelayRest {
    return new RelayRest(url, this.admin, this.operator);
  }

  async request<T = any>(method: string, path: string, body?: unknown, token = this.operator): Promise<Reply<T>> {
    const res = await fetch(`${this.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(15_000),
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text === "" ? null : JSON.parse(text);
    } catch {
      // not JSON: keep the text
    }
    return { status: res.status, headers: res.headers, body: parsed as T };
  }

  async enrollmentToken(tags: string[] = []): Promise<string> {
    const r = await this.request<{ token: string }>("POST", "/api/enrollment-tokens", { ttl_seconds: 600, tags }, this.admin);
    if (r.status !== 201) throw new Error(`enrolment token: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body.token;
  }

  async host(hostId: string): Promise<any> {
    const r = await this.request("GET", `/api/hosts/${hostId}`);
    if (r.status !== 200) throw new Error(`GET host ${hostId}: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  }

  /** POST a command (`/commands`, or a package route via `path`); returns its message_id. */
  async send(hostId: string, body: unknown, path = "commands"): Promise<string> {
    const r = await this.request<{ message_id: string; status: string }>("POST", `/api/hosts/${hostId}/${path}`, body);
    if (r.status !== 202) throw new Error(`POST ${path}: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body.message_id;
  }

  async command(hostId: string, messageId: string): Promise<any> {
    const r = await this.request("GET", `/api/hosts/${hostId}/commands/${messageId}`);
    if (r.status !== 200) throw new Error(`GET command ${messageId}: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  }

  /** Polls a command until `pred` holds (default: a terminal state). */
  async waitForCommand(
    hostId: string,
    messageId: string,
    pred: (c: any) => boolean = (c) => TERMINAL.has(c.state),
    timeoutMs = 20_000,
  ): Promise<any> {
    let last: any;
    return waitUntil(
      async () => {
        last = await this.command(hostId, messageId);
        return pred(last) ? last : undefined;
      },
      { timeoutMs, what: `command ${messageId}`, describe: () => JSON.stringify({ state: last?.state, history: last?.history }) },
    );
  }

  async waitForHostStatus(hostId: string, status: string, timeoutMs = 15_000): Promise<any> {
    let last: any;
    return waitUntil(
      async () => {
        last = await this.host(hostId);
        return last.status === status ? last : undefined;
      },
      { timeoutMs, what: `host ${hostId} to be ${status}`, describe: () => String(last?.status) },
    );
  }

  /** Every command of a host (all pages), newest first. */
  async allCommands(hostId: string, state?: string): Promise<any[]> {
    const out: any[] = [];
    let cursor: string | null = null;
    do {
      const q = new URLSearchParams({ limit: "500" });
      if (state) q.set("state", state);
      if (cursor) q.set("cursor", cursor);
      const r = await this.request<{ items: any[]; next_cursor: string | null }>("GET", `/api/hosts/${hostId}/commands?${q}`);
      if (r.status !== 200) throw new Error(`list commands: ${r.status} ${JSON.stringify(r.body)}`);
      out.push(...r.body.items);
      cursor = r.body.next_cursor;
    } while (cursor);
    return out;
  }
}
