import { EventEmitter } from "node:events";
import path from "node:path";
import type { WelcomeMessage } from "../schemas/index.ts";
import { CloseCode, PROTOCOL_VERSION } from "../schemas/index.ts";
import { type AgentOptions, ConfigError, resolveAgentOptions } from "./agent-options.ts";
import { Backoff } from "./backoff.ts";
import { MAX_CLOCK_SKEW_MS, RelayClock } from "./clock.ts";
import { CommandProcessor } from "./command-processor.ts";
import { certificateTimes } from "./csr.ts";
import type { AgentEventMap } from "./events.ts";
import type { ExecutorSettings } from "./executors/index.ts";
import { supportedCommands } from "./executors/index.ts";
import { detectPackageManager } from "./executors/package-managers.ts";
import { helloFrame, type RelayMessage } from "./frames.ts";
import { dnsHostname, helloOs } from "./host-facts.ts";
import { openJournal } from "./journal.ts";
import { createLogger } from "./log.ts";
import { CertificateExpiredError, reconnectLoop } from "./reconnect-loop.ts";
import { RelaySocket, type SocketClosed } from "./relay-socket.ts";
import { relayEndpoints } from "./relay-url.ts";
import { expiredForMs, isTransientRenewalFailure, needsRenewal, renewCertificate } from "./renewal.ts";
import { promotePending, readCredentials, readIdentity } from "./state-files.ts";
import { resolveTrust, trustAnchors } from "./tls-trust.ts";
import { AGENT_VERSION } from "./version.ts";

/** Process exit codes of the agent CLI. */
export const ExitCode = {
  OK: 0,
  FAILURE: 1,
  /** Bad usage or configuration; enrolment refused. */
  USAGE: 2,
  /** The relay revoked this host; restarting will not help. */
  REVOKED: 3,
  /** The agent's certificate has expired (it was offline past its expiry): re-enrol the host. */
  CERT_EXPIRED: 4,
} as const;

export interface AgentExit {
  exitCode: number;
  reason: string;
  /** What the operator should do next, when there is something (e.g. the re-enrol command). */
  hint?: string;
}

export interface Agent {
  readonly events: EventEmitter<AgentEventMap>;
  readonly stateDir: string;
  /** This host's id: agent.json's, or the relay's `welcome` when agent.json has none. */
  hostId(): string | null;
  /** Graceful stop (what SIGTERM does); resolves once stopped. */
  stop(reason?: string): Promise<AgentExit>;
  /** Resolves when the agent has stopped for any reason (stop, revocation). */
  readonly done: Promise<AgentExit>;
  /** Renews the certificate now if it is due; true when it was renewed. Runs on its own at start and every 12 h. */
  checkRenewal(): Promise<boolean>;
}

const DAY_MS = 86_400_000;
/** How long a stopping agent waits for the relay to answer its close frame. */
const CLOSE_TIMEOUT_MS = 2000;

/**
 * Starts an agent on an enrolled state directory: opens the journal, answers what a crash left
 * behind, then connects and serves until stopped or revoked.
 */
export async function startAgent(options: AgentOptions): Promise<Agent> {
  const o = resolveAgentOptions(options);
  const stateDir = path.resolve(o.stateDir);
  const logger = o.logger ?? createLogger();
  const identity = await readIdentity(stateDir);
  const relay = o.relay ?? identity?.relay;
  if (!relay) throw new ConfigError(`no relay URL: give one, or enrol first (no agent.json in ${stateDir})`);
  const endpoints = relayEndpoints(relay);
  const trust = resolveTrust(o, identity, stateDir);
  await promotePending(stateDir);
  try {
    await readCredentials(stateDir);
  } catch {
    throw new ConfigError(`no agent key/certificate in ${stateDir}: enrol this host first`);
  }
  try {
    trustAnchors(trust);
  } catch (err) {
    throw new ConfigError(`cannot read the CA file ${trust.caFile}: ${(err as Error).message}`);
  }

  let hostId: string | null = o.hostId ?? identity?.host_id ?? null;
  const settings: ExecutorSettings = {
    allowShell: o.allowShell,
    packageManager: o.packageManager ?? detectPackageManager(),
    maxOutputBytes: o.maxOutputBytes,
    progressIntervalMs: o.progressIntervalMs,
    killGraceMs: o.killGraceMs,
  };
  const hostname = dnsHostname(o.hostname ?? identity?.hostname);
  const events = new EventEmitter<AgentEventMap>();
  const journal = openJournal(stateDir);
  const clock = new RelayClock(o.now ?? Date.now);
  let socket: RelaySocket | null = null;
  const processor = new CommandProcessor({
    journal,
    settings,
    hostId: () => hostId,
    relayNow: () => clock.now(),
    send: (frame) => socket?.send(frame) ?? false,
    logger,
    events,
  });

  logger.info("agent starting", {
    version: AGENT_VERSION,
    state_dir: stateDir,
    relay,
    host_id: hostId,
    trust: trust.systemCa ? "system" : trust.caFile,
    allow_shell: settings.allowShell,
    package_manager: settings.packageManager,
  });
  const prune = () => {
    try {
      const removed = journal.prune(Date.now(), o.journalRetentionMs);
      if (removed > 0) logger.info("journal pruned", { removed });
    } catch (err) {
      logger.error("journal prune failed", { error: err });
    }
  };
  prune();
  processor.resume();

  const stopping = new AbortController();
  let reconnectNow = false;
  let renewing = false;

  const onFrame = (frame: RelayMessage, raw: string) => {
    switch (frame.message_type) {
      case "command":
        processor.onCommand(frame, raw);
        break;
      case "cancel":
        processor.onCancel(frame, raw);
        break;
      case "ack": {
        let acked: boolean;
        try {
          acked = journal.ack(frame.original_message_id, Date.now());
        } catch (err) {
          // The frame stays in the outbox and is resent after the next reconnect; the relay stores it once.
          logger.error("journal write failed; the relay's ack is not recorded (the frame will be resent)", {
            frame_id: frame.original_message_id,
            error: err,
          });
          break;
        }
        if (acked) events.emit("outbox_acked", { frame_id: frame.original_message_id, remaining: journal.outboxSize() });
        break;
      }
      case "error":
        logger.warn("relay reported an error", { code: frame.code, detail: frame.detail, original_message_id: frame.original_message_id });
        break;
      case "welcome":
        break;
    }
  };

  const onWelcome = (s: RelaySocket, welcome: WelcomeMessage, heartbeatMs: number, helloSentAt: number) => {
    const offset = clock.measure(welcome.server_time, helloSentAt, clock.localNow());
    if (clock.beyondBound()) {
      logger.warn(
        "this host's clock is off from the relay's by more than the bound; using the relay's clock for its times (fix the host's time sync)",
        {
          clock_offset_ms: offset,
          bound_ms: MAX_CLOCK_SKEW_MS,
        },
      );
      events.emit("clock_skew", { clock_offset_ms: offset, bound_ms: MAX_CLOCK_SKEW_MS });
    }
    if (hostId === null) hostId = welcome.host_id;
    else if (hostId !== welcome.host_id)
      logger.warn("relay knows this certificate as another host", { host_id: hostId, relay_host_id: welcome.host_id });
    // Everything unacked, oldest first, before any newer frame can go out.
    const pending = journal.outbox();
    for (const entry of pending) s.send(entry.frame);
    logger.info("connected", {
      host_id: welcome.host_id,
      heartbeat_interval_ms: heartbeatMs,
      resent: pending.length,
      clock_offset_ms: offset,
    });
    events.emit("welcome", {
      host_id: welcome.host_id,
      heartbeat_interval_ms: heartbeatMs,
      resent: pending.length,
      clock_offset_ms: offset,
    });
  };

  /** What an operator types to bring an expired host back: a new enrolment into the same state directory. */
  const reenrolCommand = () =>
    [
      "fleet-agent enroll",
      `--relay ${relay}`,
      trust.systemCa ? null : `--ca-file ${trust.caFile}`,
      identity?.hostname ? `--hostname ${identity.hostname}` : null,
      `--state-dir ${stateDir}`,
      "--force",
      "--token <new enrolment token from an admin>",
    ]
      .filter(Boolean)
      .join(" ");

  /**
   * Refuses to dial with a certificate that has expired by the relay's clock (as best known). Before
   * any welcome the offset is unknown, so a certificate expired by less than the skew bound by this
   * host's clock is still presented: the edge's verdict decides.
   */
  const checkExpiry = (certPem: string) => {
    const { notAfter } = certificateTimes(certPem);
    const expiredMs = expiredForMs(certPem, clock.now());
    if (expiredMs < 0) return;
    const fields = {
      not_after: new Date(notAfter).toISOString(),
      expired_for_s: Math.round(expiredMs / 1000),
      clock_offset_ms: clock.offsetMs,
    };
    if (clock.offsetMs === null && expiredMs <= MAX_CLOCK_SKEW_MS) {
      logger.warn("the client certificate has expired by this host's clock, within the clock-skew bound; letting the relay decide", fields);
      return;
    }
    logger.error("the client certificate has expired (checked locally); not connecting", fields);
    throw new CertificateExpiredError(`client certificate expired at ${fields.not_after} (checked locally)`);
  };

  const connectOnce = async (attempt: number): Promise<SocketClosed> => {
    const creds = await readCredentials(stateDir);
    // stop() may have run while the files were read; it found no socket to close, so open none.
    if (stopping.signal.aborted) throw new Error("agent stopping");
    checkExpiry(creds.certPem);
    let helloSentAt = clock.localNow();
    logger.info("connecting", { url: endpoints.connect, attempt });
    events.emit("connecting", { url: endpoints.connect, attempt });
    const s: RelaySocket = new RelaySocket({
      url: endpoints.connect,
      ca: trustAnchors(trust),
      cert: creds.certPem,
      key: creds.keyPem,
      hello: helloFrame({
        agent_version: AGENT_VERSION,
        protocol_version: PROTOCOL_VERSION,
        hostname,
        os: helloOs(),
        supported_commands: supportedCommands(settings),
      }),
      handshakeTimeoutMs: o.handshakeTimeoutMs,
      welcomeTimeoutMs: o.welcomeTimeoutMs,
      heartbeatIntervalMs: o.heartbeatIntervalMs,
      logger,
      onOpen: () => {
        helloSentAt = clock.localNow();
        logger.debug("hello sent", { url: endpoints.connect });
        events.emit("connected", { url: endpoints.connect });
      },
      onWelcome: (w, hb) => onWelcome(s, w, hb, helloSentAt),
      onFrame,
      onInvalid: (code, detail) => events.emit("frame_invalid", { code, detail }),
    });
    socket = s;
    const closed = await s.closed;
    socket = null;
    return closed;
  };

  const renewBackoff = new Backoff(o.renewRetryBaseMs, o.renewRetryCapMs, o.random);
  let renewRetry: NodeJS.Timeout | null = null;

  const checkRenewal = async (): Promise<boolean> => {
    if (renewing || stopping.signal.aborted) return false;
    renewing = true;
    if (renewRetry) clearTimeout(renewRetry);
    renewRetry = null;
    try {
      const { certPem } = await readCredentials(stateDir);
      if (!needsRenewal(certPem, clock.now())) return false;
      // An expired certificate is refused by the edge, renewal included: only re-enrolment helps.
      if (expiredForMs(certPem, clock.now()) > MAX_CLOCK_SKEW_MS) {
        logger.error("certificate expired; renewal is not possible, re-enrol this host", { command: reenrolCommand() });
        return false;
      }
      logger.info("certificate renewal due", { attempt: renewBackoff.attempt + 1 });
      const renewed = await renewCertificate({ relay, stateDir, ca: trustAnchors(trust) });
      renewBackoff.reset();
      logger.info("certificate renewed; reconnecting with it", { not_after: renewed.notAfter });
      events.emit("renewed", { not_after: renewed.notAfter });
      if (socket && !stopping.signal.aborted) {
        reconnectNow = true;
        socket.close(CloseCode.NORMAL, "certificate renewed");
      }
      return true;
    } catch (err) {
      const transient = isTransientRenewalFailure(err);
      let retryInMs: number | null = null;
      if (transient && !stopping.signal.aborted) {
        retryInMs = renewBackoff.next();
        renewRetry = setTimeout(() => void checkRenewal(), retryInMs);
      }
      if (transient) {
        logger.warn("certificate renewal failed; keeping the current certificate and retrying", {
          error: err,
          retry_in_ms: retryInMs,
          attempt: renewBackoff.attempt,
        });
      } else {
        logger.error("certificate renewal refused; keeping the current certificate until the next check", {
          error: err,
          next_check_ms: o.renewCheckIntervalMs,
        });
      }
      events.emit("renewal_failed", { error: (err as Error).message, transient, retry_in_ms: retryInMs });
      return false;
    } finally {
      renewing = false;
    }
  };

  const timers = [setInterval(prune, DAY_MS), setInterval(() => void checkRenewal(), o.renewCheckIntervalMs)];
  void checkRenewal();

  const loopDone = reconnectLoop({
    connectOnce,
    backoff: new Backoff(o.reconnectBaseMs, o.reconnectCapMs, o.random),
    stableAfterMs: o.stableAfterMs,
    logger,
    events,
    signal: stopping.signal,
    takeReconnectNow: () => {
      const now = reconnectNow;
      reconnectNow = false;
      return now;
    },
  });
  let resolveDone!: (exit: AgentExit) => void;
  const done = new Promise<AgentExit>((resolve) => {
    resolveDone = resolve;
  });
  let shutdownPromise: Promise<AgentExit> | null = null;

  const shutdown = (exit: AgentExit): Promise<AgentExit> => {
    shutdownPromise ??= (async () => {
      stopping.abort();
      for (const t of timers) clearInterval(t);
      if (renewRetry) clearTimeout(renewRetry);
      logger.info("agent stopping", { reason: exit.reason });
      await processor.stop(o.shutdownGraceMs);
      await flushOutbox();
      const s: RelaySocket | null = socket;
      if (s) {
        s.close(CloseCode.NORMAL, "agent stopping");
        // A peer that never answers the close handshake does not hold up the exit.
        const timer = setTimeout(() => s.terminate("close handshake timed out"), CLOSE_TIMEOUT_MS);
        await s.closed;
        clearTimeout(timer);
      }
      await loopDone;
      journal.close();
      logger.info("agent stopped", { exit_code: exit.exitCode, reason: exit.reason });
      events.emit("stopped", { exit_code: exit.exitCode, reason: exit.reason });
      resolveDone(exit);
      return exit;
    })();
    return shutdownPromise;
  };

  /** Gives the relay a moment to ack what is still unacked (a response finished during shutdown). */
  const flushOutbox = async () => {
    if (!socket?.welcomed || journal.outboxSize() === 0) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(finish, o.flushTimeoutMs);
      function onAck(e: { remaining: number }) {
        if (e.remaining === 0) finish();
      }
      function finish() {
        clearTimeout(timer);
        events.off("outbox_acked", onAck);
        resolve();
      }
      events.on("outbox_acked", onAck);
      socket?.closed.then(finish, finish);
    });
  };

  void loopDone.then(async (end) => {
    if (end === null) return;
    if (end.kind === "revoked") {
      void shutdown({ exitCode: ExitCode.REVOKED, reason: `revoked: ${end.reason}` });
      return;
    }
    let notAfter = "unknown";
    try {
      notAfter = new Date(certificateTimes((await readCredentials(stateDir)).certPem).notAfter).toISOString();
    } catch {
      // unreadable now; the reason still says why
    }
    logger.error("client certificate expired; re-enrol this host (see command)", {
      not_after: notAfter,
      reason: end.reason,
      exit_code: ExitCode.CERT_EXPIRED,
      command: reenrolCommand(),
    });
    events.emit("cert_expired", { not_after: notAfter, reason: end.reason });
    void shutdown({
      exitCode: ExitCode.CERT_EXPIRED,
      reason: `certificate expired: ${end.reason}`,
      hint: `the client certificate expired at ${notAfter}; re-enrol this host: ${reenrolCommand()}`,
    });
  });

  return {
    events,
    stateDir,
    hostId: () => hostId,
    stop: (reason = "stop requested") => shutdown({ exitCode: ExitCode.OK, reason }),
    done,
    checkRenewal,
  };
}
