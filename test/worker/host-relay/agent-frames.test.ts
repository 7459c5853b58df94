import { describe, expect, it } from "vitest";
import { ErrorMessage, FrameErrorCode, Limits, nowRfc3339 } from "../../../schemas/index.ts";
import { getCommand, helloFrame, registerHost, relayStub, TestAgent, waitFor } from "../helpers.ts";
import { connectedHost, enqueue, responseFrame, sendAndAwaitAck, states, statusFrame } from "./relay-helpers.ts";

/** Queues a command on a connected host and waits for the agent to receive it (attempt 1). */
async function sentCommand() {
  const host = await connectedHost();
  const id = await enqueue(host.host_id);
  await host.agent.command(id, 1);
  return { ...host, id };
}

describe("agent frames drive the command state", () => {
  it("ack → delivered, status running → running, response success → succeeded with result", async () => {
    const { host_id, agent, id } = await sentCommand();

    agent.ack(id);
    const delivered = await waitFor(
      () => getCommand(host_id, id),
      (v) => v.state === "delivered",
    );
    expect(states(delivered)).toEqual(["queued", "delivered"]);
    expect(delivered.attempts).toBe(1);

    const running = await sendAndAwaitAck(agent, statusFrame(id, "running"));
    expect(running.message_type).toBe("ack");
    expect((await getCommand(host_id, id)).state).toBe("running");

    const result = { output: "hello\n", exit_code: 0, execution_time: 1.5, extra_field: "kept" };
    const ack = await sendAndAwaitAck(agent, responseFrame(id, "success", result));
    expect(ack).toMatchObject({ message_type: "ack" });
    expect(typeof ack.message_id).toBe("string");
    expect(ack.message_id).not.toBe(ack.original_message_id);

    const view = await getCommand(host_id, id);
    expect(view.state).toBe("succeeded");
    expect(view.response_status).toBe("success");
    expect(view.result).toEqual(result);
    expect(states(view)).toEqual(["queued", "delivered", "running", "succeeded"]);
  });

  it("progress chunks are stored and GET shows them concatenated in seq order", async () => {
    const { host_id, agent, id } = await sentCommand();
    agent.ack(id);
    await sendAndAwaitAck(agent, statusFrame(id, "running"));
    await sendAndAwaitAck(agent, statusFrame(id, "progress", "line 1\n", 0));
    await sendAndAwaitAck(agent, statusFrame(id, "progress", "line 3\n", 2));
    // A chunk the agent resent after a reconnect lands later on the wire but earlier in seq.
    await sendAndAwaitAck(agent, statusFrame(id, "progress", "line 2\n", 1));

    const view = await getCommand(host_id, id);
    expect(view.state).toBe("running");
    expect(view.output).toBe("line 1\nline 2\nline 3\n");
    // The highest seq held, whatever order the chunks arrived in: live views append only above it.
    expect(view.output_seq).toBe(2);
  });

  it.each([
    ["failure", "failed"],
    ["timeout", "timed_out"],
    ["rejected", "failed"],
  ])("response %s → %s, with response_status kept", async (status, state) => {
    const { host_id, agent, id } = await sentCommand();
    agent.ack(id);
    const result = status === "rejected" ? { reason: "command type disabled" } : { output: "boom", exit_code: 2, execution_time: 3 };
    await sendAndAwaitAck(agent, responseFrame(id, status, result));

    const view = await getCommand(host_id, id);
    expect(view.state).toBe(state);
    expect(view.response_status).toBe(status);
    expect(view.result).toEqual(result);
    expect(view.history.at(-1).state).toBe(state);
  });

  it("a response without an earlier ack implies delivered, then succeeded", async () => {
    const { host_id, agent, id } = await sentCommand();
    await sendAndAwaitAck(agent, responseFrame(id, "success"));
    const view = await getCommand(host_id, id);
    expect(view.state).toBe("succeeded");
    expect(states(view)).toEqual(["queued", "delivered", "succeeded"]);
  });

  it("a duplicate response (same frame twice, then another frame id) is stored once and every frame is acked", async () => {
    const { host_id, agent, id } = await sentCommand();
    agent.ack(id);
    const first = responseFrame(id, "success", { output: "first", exit_code: 0 });
    await sendAndAwaitAck(agent, first);
    await sendAndAwaitAck(agent, first);
    const other = responseFrame(id, "failure", { output: "second", exit_code: 1 });
    await sendAndAwaitAck(agent, other);

    expect(agent.frames.filter((f) => f.message_type === "ack" && f.original_message_id === first.message_id)).toHaveLength(2);
    const view = await getCommand(host_id, id);
    expect(view.state).toBe("succeeded");
    expect(view.response_status).toBe("success");
    expect(view.result).toEqual({ output: "first", exit_code: 0 });
    const terminal = view.history.filter((h: { state: string }) => ["succeeded", "failed", "timed_out"].includes(h.state));
    expect(terminal).toHaveLength(1);
  });

  it("a resent status chunk (same frame id) is stored once", async () => {
    const { host_id, agent, id } = await sentCommand();
    agent.ack(id);
    const chunk = statusFrame(id, "progress", "once\n", 0);
    await sendAndAwaitAck(agent, chunk);
    await sendAndAwaitAck(agent, chunk);
    await sendAndAwaitAck(agent, statusFrame(id, "progress", "twice\n", 1));
    const view = await getCommand(host_id, id);
    expect(view.output).toBe("once\ntwice\n");
    expect(states(view).filter((s: string) => s === "running")).toHaveLength(1);
  });

  it("a response for an unknown command gets ERR_UNKNOWN_COMMAND and is acked", async () => {
    const { host_id, agent } = await connectedHost();
    const frame = responseFrame(crypto.randomUUID());
    const error = agent.nextNew((f) => f.message_type === "error" && f.original_message_id === frame.message_id);
    await sendAndAwaitAck(agent, frame);
    expect(await error).toMatchObject({ code: FrameErrorCode.UNKNOWN_COMMAND });
    const recorded = await relayStub(host_id).frameErrors();
    expect(recorded.map((e) => e.code)).toEqual([FrameErrorCode.UNKNOWN_COMMAND]);
  });
});

describe("malformed frames", () => {
  /** Sends `raw` and returns the error frame the relay answers with. */
  async function rejected(agent: TestAgent, raw: string | ArrayBuffer | Uint8Array): Promise<any> {
    const error = agent.nextNew((f) => f.message_type === "error");
    agent.ws.send(raw);
    return error;
  }

  it("each bad frame gets a stable error code, is recorded, and the socket stays usable", async () => {
    const { host_id, agent } = await connectedHost();
    const id = await enqueue(host_id);
    await agent.command(id, 1);

    const badId = crypto.randomUUID();
    const cases: [string | Uint8Array, string][] = [
      ["{not json", FrameErrorCode.MALFORMED_JSON],
      [JSON.stringify({ message_id: badId, timestamp: nowRfc3339(), message_type: "ack" }), FrameErrorCode.INVALID],
      [
        JSON.stringify({ message_id: crypto.randomUUID(), timestamp: nowRfc3339(), message_type: "launch_missiles" }),
        FrameErrorCode.INVALID,
      ],
      [new Uint8Array([0x7b, 0x7d]), FrameErrorCode.BINARY_UNSUPPORTED],
    ];
    for (const [raw, code] of cases) {
      const error = await rejected(agent, raw);
      expect(error.code).toBe(code);
      expect(typeof error.detail).toBe("string");
      expect(agent.closed).toBeNull();
    }
    // The frame with a usable message_id is pointed at by the error.
    expect(agent.frames.find((f) => f.message_type === "error" && f.code === FrameErrorCode.INVALID).original_message_id).toBe(badId);
    expect((await relayStub(host_id).frameErrors()).map((e) => e.code)).toEqual(cases.map(([, code]) => code));

    // Still a healthy connection: the ack is taken.
    agent.ack(id);
    const view = await waitFor(
      () => getCommand(host_id, id),
      (v) => v.state === "delivered",
    );
    expect(view.state).toBe("delivered");
    expect(agent.closed).toBeNull();
  });

  it("an error frame fits the wire schema even when the refused frame has hundreds of failing fields (found by the frame fuzz)", async () => {
    const { agent } = await connectedHost();
    const frame = { ...responseFrame(crypto.randomUUID()), result: { installed_packages: Array.from({ length: 500 }, (_, i) => i) } };
    const error = await rejected(agent, JSON.stringify(frame));
    expect(error.code).toBe(FrameErrorCode.INVALID);
    expect(error.original_message_id).toBe(frame.message_id);
    expect(error.detail.length).toBeLessThanOrEqual(Limits.MAX_ERROR_DETAIL_CHARS);
    expect(error.detail).toContain("result.installed_packages.0");
    expect(ErrorMessage.safeParse(error).success).toBe(true);
    expect(agent.closed).toBeNull();
  });

  it("a frame before hello gets ERR_HELLO_REQUIRED and the connection can still say hello", async () => {
    const host = await registerHost();
    const id = await enqueue(host.host_id);
    const agent = await TestAgent.connect(host.fingerprint, false);

    const early = { message_id: crypto.randomUUID(), timestamp: nowRfc3339(), message_type: "ack", original_message_id: id };
    const error = await rejected(agent, JSON.stringify(early));
    expect(error.code).toBe(FrameErrorCode.HELLO_REQUIRED);
    expect(error.original_message_id).toBe(early.message_id);
    expect((await relayStub(host.host_id).frameErrors()).map((e) => e.code)).toEqual([FrameErrorCode.HELLO_REQUIRED]);
    // The early ack did not count: nothing was sent yet.
    expect((await getCommand(host.host_id, id)).state).toBe("queued");

    agent.send(helloFrame());
    await agent.next((f) => f.message_type === "welcome");
    await agent.command(id, 1);
    agent.ack(id);
    await waitFor(
      () => getCommand(host.host_id, id),
      (v) => v.state === "delivered",
    );
    expect(agent.closed).toBeNull();
  });
});
