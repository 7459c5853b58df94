import { describe, expect, it } from "vitest";
import { registrationFromHeader } from "../../../worker/host-relay/contract.ts";

describe("the registration the Worker hands to a connect", () => {
  it.each([
    ['{"revoked_at":null,"tags":["db","eu"]}', { revoked_at: null, tags: ["db", "eu"] }],
    ['{"revoked_at":"2026-12-01T00:00:00.000Z","tags":[]}', { revoked_at: "2026-12-01T00:00:00.000Z", tags: [] }],
  ])("is taken when well formed: %s", (header, expected) => {
    expect(registrationFromHeader(header)).toEqual(expected);
  });

  it.each([null, "", "{", "[]", '{"tags":["a"]}', '{"revoked_at":null,"tags":[1]}', '{"revoked_at":5,"tags":[]}'])(
    "is ignored (the object reads the registry) when absent or malformed: %s",
    (header) => {
      expect(registrationFromHeader(header)).toBeUndefined();
    },
  );
});
