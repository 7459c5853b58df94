import { env, exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { createApp } from "../../../worker/app.ts";
import { EventStream, hostEvent } from "../fleet-events/stream-client.ts";
import { BASE, expectProblem, token } from "../helpers.ts";

async function post(events: unknown[], role = "admin", testEnv: object = env): Promise<Response> {
  const init = {
    method: "POST",
    headers: { authorization: `Bearer ${await token(role)}`, "content-type": "application/json" },
    body: JSON.stringify({ events }),
  };
  return testEnv === env
    ? exports.default.fetch(new Request(`${BASE}/test/fleet-events/publish`, init))
    : createApp().request(`${BASE}/test/fleet-events/publish`, init, testEnv);
}

describe("POST /test/fleet-events/publish (the events benchmark's way in)", () => {
  it("hands the events to FleetEvents in order: a subscriber gets each once, offsets one apart", async () => {
    const host = crypto.randomUUID();
    const s = await EventStream.open(`hosts=${host}`);
    const events = Array.from({ length: 30 }, () => hostEvent(host, "command.state", { message_id: crypto.randomUUID(), state: "queued" }));
    for (let i = 0; i < events.length; i += 10) expect((await post(events.slice(i, i + 10))).status).toBe(204);
    await s.next((f) => f.message_id === events.at(-1)!.message_id);
    const got = s.events();
    expect(got.map((f) => f.message_id)).toEqual(events.map((e) => e.message_id));
    expect(got.map((f) => f.offset - got[0].offset)).toEqual(events.map((_, i) => i));
    s.close();
  });

  it("needs an admin token, and does not exist unless TEST_FAULTS is 1", async () => {
    await expectProblem(await post([], "operator"), 403, "ERR_FORBIDDEN");
    await expectProblem(await post([], "admin", { ...env, TEST_FAULTS: undefined }), 404, "ERR_NOT_FOUND");
  });
});
