import type { EventEmitter } from "node:events";
import { CloseCode } from "../schemas/index.ts";
import type { Backoff } from "./backoff.ts";
import type { AgentEventMap } from "./events.ts";
import type { Logger } from "./log.ts";
import { ABNORMAL_CLOSURE, type SocketClosed } from "./relay-socket.ts";

export interface ReconnectLoopOptions {
  /** One connection, from dial to close. */
  connectOnce(attempt: number): Promise<SocketClosed>;
  backoff: Backoff;
  /** A connection up at least this long resets the backoff. */
  stableAfterMs: number;
  logger: Logger;
  events: EventEmitter<AgentEventMap>;
  /** Aborted when the agent stops: no further attempt, and a pending wait ends at once. */
  signal: AbortSignal;
  /** True (once) when the last close was ours to pick up a renewed certificate: redial without waiting. */
  takeReconnectNow(): boolean;
}

/** Why the loop ended for good: reconnecting could never succeed. */
export type LoopEnd = { kind: "revoked"; reason: string } | { kind: "cert_expired"; reason: string };

/**
 * Thrown by `connectOnce` when the agent's own certificate has expired by the relay's clock (as
 * best known) beyond the clock-skew bound: dialing would only be refused.
 */
export class CertificateExpiredError extends Error {
  override name = "CertificateExpiredError";
}

/**
 * The relay's edge refused this agent's certificate as expired: the upgrade answered 403
 * ERR_AGENT_CERT_UNVERIFIED naming the expiry (the local edge: "CERT_HAS_EXPIRED"; Cloudflare:
 * "FAILED:certificate has expired"), or the handshake itself failed with the TLS alert
 * certificate_expired (an edge that refuses at the TLS layer). The relay's own certificate having
 * expired is a different error on this side ("certificate has expired", CERT_HAS_EXPIRED from
 * our verification, not an alert) and is retried like any transport failure.
 */
export function isCertificateExpiry(closed: SocketClosed): boolean {
  const text = closed.error ?? "";
  if (closed.problemCode === "ERR_AGENT_CERT_EXPIRED") return true;
  if (closed.problemCode === "ERR_AGENT_CERT_UNVERIFIED" && /expired/i.test(text)) return true;
  return /alert certificate expired|SSL alert number 45\b/i.test(text);
}

/** The relay says this host is revoked: a 4003 close, or an upgrade refused with ERR_AGENT_REVOKED. */
export function isRevocation(closed: SocketClosed): boolean {
  return closed.code === CloseCode.REVOKED || closed.problemCode === "ERR_AGENT_REVOKED";
}

/**
 * Keeps a connection to the relay until stopped: exponential backoff with full jitter between
 * attempts, reset after a stable connection. Returns why when reconnecting could never succeed
 * (the host was revoked, its certificate expired), null when stopped.
 */
export async function reconnectLoop(o: ReconnectLoopOptions): Promise<LoopEnd | null> {
  let attempt = 0;
  while (!o.signal.aborted) {
    attempt++;
    let closed: SocketClosed;
    try {
      closed = await o.connectOnce(attempt);
    } catch (err) {
      if (err instanceof CertificateExpiredError) return { kind: "cert_expired", reason: err.message };
      closed = {
        code: ABNORMAL_CLOSURE,
        reason: "",
        error: (err as Error).message,
        welcomed: false,
        upMs: 0,
        httpStatus: null,
        problemCode: null,
      };
    }
    const fields = { code: closed.code, reason: closed.reason, error: closed.error, up_ms: closed.upMs, http_status: closed.httpStatus };
    o.events.emit("disconnected", fields);
    if (isRevocation(closed)) {
      const why = closed.reason || closed.error || "certificate revoked";
      o.logger.error("this host was revoked by the relay; stopping for good (re-enrol to return)", fields);
      o.events.emit("revoked", { reason: why });
      return { kind: "revoked", reason: why };
    }
    if (isCertificateExpiry(closed)) {
      return { kind: "cert_expired", reason: closed.error ?? "the relay refused the certificate as expired" };
    }
    if (o.signal.aborted) break;
    // 4001 (replaced) lands here too: another connection of this host won; back off rather than fight it.
    o.logger.warn("disconnected", { ...fields, replaced: closed.code === CloseCode.REPLACED });
    if (closed.upMs >= o.stableAfterMs) o.backoff.reset();
    if (o.takeReconnectNow()) continue;
    const delay = o.backoff.next();
    o.logger.info("reconnect scheduled", { delay_ms: delay, attempt: o.backoff.attempt });
    o.events.emit("reconnect_scheduled", { delay_ms: delay, attempt: o.backoff.attempt });
    await abortableDelay(delay, o.signal);
  }
  return null;
}

function abortableDelay(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}
