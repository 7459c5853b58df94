import type { Clock } from "../clock.ts";
import type { RelayConfig } from "../config.ts";
import type { Env } from "../env.ts";
import type { MetricsDelta } from "../metrics/delta.ts";
import type { TestFaults } from "../test-faults.ts";
import type { HostRelayStorage } from "./storage.ts";

/** Everything a HostRelay handler needs; rebuilt after hibernation from storage and attachments. */
export interface RelayContext {
  ctx: DurableObjectState;
  env: Env;
  store: HostRelayStorage;
  config: RelayConfig;
  /** Time and jitter; tests replace it through `runInDurableObject`. */
  clock: Clock;
  /** Last alarm time this instance set; undefined after a wake-up, when it is not known. */
  alarmAt: number | null | undefined;
  /** Registry writes for one host run one after another, so online/offline cannot land out of order. */
  registryChain: Promise<void>;
  flushing: boolean;
  flushAgain: boolean;
  /** Points the single alarm at the earliest due row or socket deadline (delivery.ts). */
  settleAlarm: () => void;
  /** Test-only failure injection, inert unless TEST_FAULTS is set (worker/test-faults.ts). */
  faults: TestFaults;
  /** Per-connection frame budgets, by socket (in memory: a wake-up starts them afresh). */
  frameBudgets: WeakMap<WebSocket, FrameBudget>;
  /**
   * Each socket's attachment as this instance last read or wrote it: reading one is a structured-clone
   * deserialisation, and one event reads them several times (the alarm's deadlines, the ready socket).
   * Only this object writes them, through `saveAttachment`, so the copy stays true; a wake-up starts empty.
   */
  attachments: WeakMap<WebSocket, AgentAttachment>;
  /** Gauge values FleetEvents has from this host (in memory: a wake-up sends them all again). */
  sentGauges: Map<string, number>;
  /**
   * The open metrics outbox row, kept in memory so merging a change costs one UPDATE: undefined
   * when not known (after a wake-up: read from storage once), null when there is none.
   */
  openMetrics: { id: number; delta: MetricsDelta; notBefore: number } | null | undefined;
  /** Non-final commands per state and dead letters, kept up to date per transition; null when not known (counted once from storage). */
  gaugeCounts: { active: Record<string, number>; deadLetters: number } | null;
}

/** A token bucket of frames for one connection. */
export interface FrameBudget {
  tokens: number;
  refilledAt: number;
  /** Frames refused since the bucket last had room. */
  refused: number;
}

/** Per-socket data kept across hibernation. */
export interface AgentAttachment {
  connectionId: string;
  hostId: string;
  connectedAt: number;
  lastFrameAt: number;
  helloAt: number | null;
  /** Set when the relay closed the socket or saw it close, so later hooks for it do nothing. */
  closed: boolean;
  /** The client certificate's SHA-256 fingerprint and the agent's address, for the audit trail. */
  fingerprint?: string | null;
  address?: string | null;
}

export const AGENT_TAG = "agent";
/** A connection must send `hello` within this long. */
export const HELLO_TIMEOUT_MS = 10_000;

export function attachment(rc: RelayContext, ws: WebSocket): AgentAttachment {
  let a = rc.attachments.get(ws);
  if (a === undefined) {
    a = ws.deserializeAttachment() as AgentAttachment;
    rc.attachments.set(ws, a);
  }
  return a;
}

/** Stores `a` with the socket (it survives hibernation) and as this instance's copy. */
export function saveAttachment(rc: RelayContext, ws: WebSocket, a: AgentAttachment): void {
  ws.serializeAttachment(a);
  rc.attachments.set(ws, a);
}

/** The socket commands go to: open, greeted, not superseded. */
export function readySocket(rc: RelayContext): WebSocket | null {
  for (const ws of rc.ctx.getWebSockets(AGENT_TAG)) {
    const a = attachment(rc, ws);
    if (!a.closed && a.helloAt !== null && ws.readyState === WebSocket.OPEN) return ws;
  }
  return null;
}

export function liveSockets(rc: RelayContext): WebSocket[] {
  return rc.ctx.getWebSockets(AGENT_TAG).filter((ws) => !attachment(rc, ws).closed);
}

export function sendFrame(ws: WebSocket, frame: object): boolean {
  try {
    ws.send(JSON.stringify(frame));
    return true;
  } catch {
    return false;
  }
}

export function enqueueRegistryWrite(rc: RelayContext, write: () => Promise<void>): void {
  rc.registryChain = rc.registryChain.then(write).catch((err: unknown) => {
    console.error("registry write failed", err);
  });
  rc.ctx.waitUntil(rc.registryChain);
}
