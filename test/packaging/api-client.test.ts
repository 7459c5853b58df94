/**
 * The dashboard's API client is generated from the OpenAPI document (scripts/api-client.ts): the
 * committed dashboard/src/api/schema.d.ts must be what a fresh generation gives, so a route or
 * schema change that is not carried into the client fails here. The document is the committed
 * root openapi.json when there is one, else the one a local relay serves.
 */
import { readFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { generateSchemaTypes, loadOpenApiDocument, REGENERATE_COMMAND, SCHEMA_FILE } from "../../scripts/api-client.ts";

describe("generated API client", () => {
  it("dashboard/src/api/schema.d.ts is up to date with the OpenAPI document", async () => {
    const { document, source } = await loadOpenApiDocument();
    expect(Object.keys(document.paths as object)).toContain("/api/hosts");
    const fresh = await generateSchemaTypes(document);
    const committed = await readFile(SCHEMA_FILE, "utf8");
    // A plain equality, not toEqual's diff of 4,000 lines: the message says what to run.
    expect(committed === fresh, `schema.d.ts is stale relative to ${source}; regenerate with \`${REGENERATE_COMMAND}\``).toBe(true);
  });
});
