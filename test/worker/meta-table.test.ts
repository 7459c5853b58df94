import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { HostRelayStorage } from "../../worker/host-relay/storage.ts";
import { MetaTable } from "../../worker/meta-table.ts";
import { relayStub } from "./helpers.ts";
import { countingSql } from "./host-relay/relay-helpers.ts";

describe("MetaTable", () => {
  it("reads a key once, keeps its own writes, and stores what a fresh instance reads back", async () => {
    await runInDurableObject(relayStub(crypto.randomUUID()), (_instance, state) => {
      new HostRelayStorage(state.storage).initialize();
      const counting = countingSql(state.storage.sql);
      const meta = new MetaTable(counting.sql);
      expect(meta.get("k")).toBeNull();
      expect(meta.get("k")).toBeNull();
      expect(counting.statements()).toBe(1);
      meta.set("k", 42);
      expect(meta.get("k")).toBe("42");
      expect(counting.statements()).toBe(2);
      meta.setOnce("epoch", "first");
      meta.setOnce("epoch", "second");
      expect(meta.get("epoch")).toBe("first");
      const fresh = new MetaTable(state.storage.sql);
      expect([fresh.get("k"), fresh.get("epoch"), fresh.get("absent")]).toEqual(["42", "first", null]);
    });
  });
});
