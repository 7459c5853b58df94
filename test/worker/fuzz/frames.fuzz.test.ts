/**
 * Seeded property-based fuzzing of the agent WebSocket: generated frames against a HostRelay over its
 * real socket, several hosts at once, each session on a fresh connection that stays under the
 * per-connection frame budget (FRAME_BURST=300 in these tests).
 *
 * Per session the relay holds real commands in every stage (queued and sent, delivered, running,
 * succeeded, cancelling). Properties:
 *  - the socket stays open, and the relay answers every frame as the protocol says — a refused frame
 *    with exactly one `error` frame carrying a stable code, a stored status/response with its ack,
 *    a status/response for an unknown command with ERR_UNKNOWN_COMMAND and an ack;
 *  - nothing is stored from a refused frame: a command no accepted frame named keeps its state,
 *    history, result and output;
 *  - afterwards a command still makes the full round trip on the same connection.
 *
 * FUZZ_SEED replays a run (the seed is printed first); FUZZ_RUNS sets the number of frames.
 */
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { FrameErrorCode, HEARTBEAT_PING, RelayFrame } from "../../../schemas/index.ts";
import { parseFrame } from "../../../worker/host-relay/agent-frames.ts";
import { api, getCommand, registerHost, TestAgent } from "../helpers.ts";
import { enqueue, responseFrame, sendAndAwaitAck, statusFrame } from "../host-relay/relay-helpers.ts";
import { type BuiltFrame, buildFrame, type FrameSpec, frameSpecArb } from "./frame-gen.ts";
import { fuzzConfig } from "./fuzz-config.ts";

const HOSTS = 4;
const FRAMES_PER_SESSION = 125;
const SLOTS = 5;
const DEFAULT_FRAMES = 10_000;
const CODES = new Set<string>(Object.values(FrameErrorCode));

let hosts: { host_id: string; fingerprint: string }[] = [];

beforeAll(async () => {
  hosts = await Promise.all(Array.from({ length: HOSTS }, () => registerHost(["fuzz"])));
});

/** What a command looks like to REST, minus what the relay's own retries change (attempts, times). */
async function view(hostId: string, id: string): Promise<string> {
  const c = await getCommand(hostId, id);
  return JSON.stringify({
    state: c.state,
    response_status: c.response_status,
    result: c.result,
    output: c.output,
    history: c.history.map((h: any) => [h.state, h.detail]),
  });
}

type Expect = { type: "error"; code: string; original?: string } | { type: "ack"; original: string };

/** What the protocol says the relay answers to one frame, and which command (if any) it may change. */
function expected(frame: BuiltFrame, known: Set<string>): { replies: Expect[]; touches: string | null } {
  // The heartbeat is answered by the runtime (a `pong`, filtered out below) and never reaches the relay.
  if (frame.raw === HEARTBEAT_PING) return { replies: [], touches: null };
  const parsed =
    typeof frame.raw === "string"
      ? parseFrame(frame.raw)
      : ({ ok: false, code: FrameErrorCode.BINARY_UNSUPPORTED, originalId: undefined } as const);
  if (!parsed.ok) {
    const original = parsed.originalId && /^[0-9a-f-]{36}$/i.test(parsed.originalId) ? parsed.originalId : undefined;
    return { replies: [{ type: "error", code: parsed.code, ...(original ? { original } : {}) }], touches: null };
  }
  const f = parsed.frame;
  switch (f.message_type) {
    case "hello":
      return { replies: [{ type: "error", code: FrameErrorCode.HELLO_REPEATED, original: f.message_id }], touches: null };
    case "ack":
      return { replies: [], touches: f.original_message_id };
    case "error":
      return { replies: [], touches: f.original_message_id ?? null };
    case "status":
    case "response":
      if (!known.has(f.original_message_id)) {
        return {
          replies: [
            { type: "error", code: FrameErrorCode.UNKNOWN_COMMAND, original: f.message_id },
            { type: "ack", original: f.message_id },
          ],
          touches: null,
        };
      }
      return { replies: [{ type: "ack", original: f.message_id }], touches: f.original_message_id };
  }
}

const describeFrame = (f: BuiltFrame) =>
  typeof f.raw === "string"
    ? `${f.spec.kind} ${f.raw.length} chars: ${JSON.stringify(f.raw.slice(0, 300))}`
    : `binary ${f.raw.length} bytes`;

/** Frames the relay sends on its own schedule (deliveries, retries, cancels) and the runtime's pong. */
const unsolicited = (f: any) => f === "pong" || f?.message_type === "command" || f?.message_type === "cancel";

interface SessionStats {
  frames: number;
  refused: number;
}

async function session(host: { host_id: string; fingerprint: string }, specs: FrameSpec[], known: Set<string>): Promise<SessionStats> {
  const { host_id } = host;
  // Real commands in each stage: [0] sent, never acked (queued); [1] delivered; [2] running; [3] succeeded; [4] cancelling.
  const ids: string[] = [];
  for (let i = 0; i < SLOTS; i++) ids.push(await enqueue(host_id, { timeout: 3600, expires_in: 86_400, max_attempts: 100 }));
  ids.forEach((id) => known.add(id));
  const agent = await TestAgent.connect(host.fingerprint);
  try {
    await Promise.all(ids.map((id) => agent.command(id)));
    for (const id of ids.slice(1)) await sendAndAwaitAckOf(agent, id);
    await sendAndAwaitAck(agent, statusFrame(ids[2]!, "running"));
    await sendAndAwaitAck(agent, responseFrame(ids[3]!));
    expect((await api(`/api/hosts/${host_id}/commands/${ids[4]}`, { method: "DELETE", role: "operator" })).status).toBe(202);
    const cancel = await agent.next((f) => f.message_type === "cancel" && f.original_message_id === ids[4]);
    agent.ack(cancel.message_id);
    await barrier(agent);
    const before = await Promise.all(ids.map((id) => view(host_id, id)));
    expect(JSON.parse(before[0]!).state).toBe("queued");
    expect(JSON.parse(before[4]!).state).toBe("cancelling");

    // The fuzz frames, pipelined, then a barrier whose ack proves the relay has answered them all.
    const start = agent.frames.length;
    let lastId: string | null = null;
    const built: BuiltFrame[] = [];
    for (const spec of specs) {
      const f = buildFrame(spec, ids, lastId);
      built.push(f);
      if (typeof f.raw === "string") {
        agent.send(f.raw);
        try {
          const id = JSON.parse(f.raw)?.message_id;
          if (typeof id === "string") lastId = id;
        } catch {
          // not JSON
        }
      } else agent.ws.send(f.raw);
    }
    const barrierId = crypto.randomUUID();
    const done = agent.next((f) => f.message_type === "ack" && f.original_message_id === barrierId, 30_000);
    agent.send(statusFrame(crypto.randomUUID(), "running", undefined, undefined, barrierId));
    await done;

    // Every answer matches what the protocol says, in order.
    expect(agent.closed, "the socket stays open").toBeNull();
    const replies = agent.frames.slice(start).filter((f) => !unsolicited(f));
    const touched = new Set<string>();
    const want: { expect: Expect; frame: BuiltFrame | null }[] = [];
    let refused = 0;
    for (const f of built) {
      const e = expected(f, known);
      if (e.touches) touched.add(e.touches);
      if (e.replies.some((r) => r.type === "error")) refused++;
      for (const r of e.replies) want.push({ expect: r, frame: f });
    }
    want.push(
      { expect: { type: "error", code: FrameErrorCode.UNKNOWN_COMMAND, original: barrierId }, frame: null },
      { expect: { type: "ack", original: barrierId }, frame: null },
    );
    for (let i = 0; i < Math.max(want.length, replies.length); i++) {
      const got = replies[i];
      const w = want[i];
      const where = () =>
        `reply ${i}: wanted ${JSON.stringify(w?.expect)} got ${JSON.stringify(got)?.slice(0, 300)} for ${w?.frame ? describeFrame(w.frame) : "the barrier"}`;
      expect(w, `an unexpected reply: ${where()}`).toBeDefined();
      expect(got, `a missing reply: ${where()}`).toBeDefined();
      expect(RelayFrame.safeParse(got).success, `a valid relay frame: ${where()}`).toBe(true);
      expect(got.message_type, where()).toBe(w!.expect.type);
      if (w!.expect.type === "error") {
        expect(got.code, where()).toMatch(/^ERR_[A-Z_]+$/);
        expect(CODES.has(got.code), `a documented code: ${where()}`).toBe(true);
        expect(got.code, where()).toBe(w!.expect.code);
      }
      if (w!.expect.original !== undefined) expect(got.original_message_id, where()).toBe(w!.expect.original);
    }

    // Nothing stored from a refused frame: commands no accepted frame named are as they were.
    const after = await Promise.all(ids.map((id) => view(host_id, id)));
    ids.forEach((id, i) => {
      if (!touched.has(id))
        expect(after[i], `command ${i} (${JSON.parse(before[i]!).state}) changed though no accepted frame named it`).toBe(before[i]);
    });

    // The connection still carries a full round trip.
    const fresh = await enqueue(host_id, { timeout: 3600 });
    known.add(fresh);
    await agent.command(fresh);
    agent.ack(fresh);
    await sendAndAwaitAck(agent, statusFrame(fresh, "running", "out"));
    await sendAndAwaitAck(agent, responseFrame(fresh, "success", { output: "done", exit_code: 0, execution_time: 0.01 }));
    const finished = await getCommand(host_id, fresh);
    expect(finished.state).toBe("succeeded");
    expect(finished.history.map((h: any) => h.state)).toEqual(["queued", "delivered", "running", "succeeded"]);
    expect(agent.closed, "the socket stays open").toBeNull();

    // Settle every command, so none is retried into a later session.
    for (const id of ids) await sendAndAwaitAck(agent, responseFrame(id, "cancelled"));
    return { frames: built.length, refused };
  } finally {
    agent.close();
  }
}

async function sendAndAwaitAckOf(agent: TestAgent, commandId: string): Promise<void> {
  agent.ack(commandId);
  await barrier(agent);
}

async function barrier(agent: TestAgent): Promise<void> {
  await sendAndAwaitAck(agent, statusFrame(crypto.randomUUID(), "running"));
}

describe("frame fuzz", () => {
  it("the relay never crashes, refuses every bad frame with a stable code and stores nothing from it; round trips still work", async () => {
    const { seed, total } = fuzzConfig("frames", DEFAULT_FRAMES);
    const perRun = HOSTS * FRAMES_PER_SESSION;
    const known = hosts.map(() => new Set<string>());
    let frames = 0;
    let refused = 0;
    const started = Date.now();
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.array(frameSpecArb(SLOTS), { minLength: FRAMES_PER_SESSION, maxLength: FRAMES_PER_SESSION }), {
          minLength: HOSTS,
          maxLength: HOSTS,
        }),
        async (sessions) => {
          const stats = await Promise.all(sessions.map((specs, i) => session(hosts[i]!, specs, known[i]!)));
          for (const s of stats) {
            frames += s.frames;
            refused += s.refused;
          }
        },
      ),
      { seed, numRuns: Math.ceil(total / perRun), endOnFailure: true },
    );
    console.log(`[fuzz:frames] ${frames} frames (${refused} refused) on ${HOSTS} hosts in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    if (total >= DEFAULT_FRAMES) expect(frames).toBeGreaterThanOrEqual(DEFAULT_FRAMES);
  }, 600_000);
});
