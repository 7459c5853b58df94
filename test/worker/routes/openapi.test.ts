import { beforeAll, describe, expect, it } from "vitest";
import committed from "../../../openapi.json" with { type: "json" };
import { PROTOCOL_VERSION } from "../../../schemas/index.ts";
import { api, expectProblem, PROBLEM_JSON } from "../helpers.ts";

const METHODS = ["get", "put", "post", "delete", "patch", "options", "head", "trace"] as const;

let spec: any;

/** Follows a local `$ref` in the document. */
function resolve(node: any): any {
  let n = node;
  while (n && typeof n.$ref === "string") {
    const path = n.$ref.replace(/^#\//, "").split("/");
    n = path.reduce((o: any, k: string) => o?.[k.replaceAll("~1", "/").replaceAll("~0", "~")], spec);
  }
  return n;
}

function operations(): { path: string; method: string; op: any }[] {
  return Object.entries(spec.paths as Record<string, any>).flatMap(([path, item]) =>
    METHODS.filter((m) => item[m]).map((method) => ({ path, method, op: item[method] })),
  );
}

beforeAll(async () => {
  const res = await api("/openapi.json", { token: null });
  expect(res.status, await res.clone().text()).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^application\/json/);
  spec = await res.json();
});

describe("GET /openapi.json", () => {
  it("is an OpenAPI 3.1 document for the relay", () => {
    expect(spec.openapi).toBe("3.1.0");
    expect(spec.info.title).toEqual(expect.any(String));
    expect(spec.info.version).toEqual(expect.any(String));
  });

  it.each([
    ["/api/hosts", ["get", "post"]],
    ["/api/hosts/{host_id}", ["get"]],
    ["/api/hosts/{host_id}/revoke", ["post"]],
    ["/api/hosts/{host_id}/packages/{operation}", ["post"]],
    ["/api/hosts/{host_id}/commands", ["get", "post"]],
    ["/api/hosts/{host_id}/commands/{message_id}", ["get", "delete"]],
    ["/api/hosts/{host_id}/dead-letters", ["get"]],
    ["/api/hosts/{host_id}/dead-letters/{message_id}/requeue", ["post"]],
    ["/agent/connect", ["get"]],
    ["/healthz", ["get"]],
  ])("documents %s (%s)", (path, methods) => {
    expect(Object.keys(spec.paths)).toContain(path);
    for (const m of methods) expect(spec.paths[path][m], `${m.toUpperCase()} ${path}`).toBeDefined();
  });

  it("every path parameter in a route is declared", () => {
    for (const { path, method, op } of operations()) {
      const declared = (op.parameters ?? [])
        .map(resolve)
        .filter((p: any) => p.in === "path")
        .map((p: any) => p.name);
      const inPath = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]);
      expect(declared.sort(), `${method.toUpperCase()} ${path}`).toEqual(inPath.sort());
    }
  });

  it("is the committed openapi.json, which redocly lint and client generators read", () => {
    // toEqual ignores key order; the file is what `npm run openapi` writes from this same document.
    expect(spec, "openapi.json is stale: run `npm run openapi` to regenerate it").toEqual(committed);
  });

  it("declares bearerAuth as an HTTP bearer scheme", () => {
    expect(spec.components.securitySchemes.bearerAuth).toMatchObject({ type: "http", scheme: "bearer" });
  });

  it("declares the agents' client certificate as a mutualTLS scheme, used by the agent routes behind the edge", () => {
    expect(spec.components.securitySchemes.agentCertificate).toMatchObject({ type: "mutualTLS" });
    expect(spec.paths["/agent/connect"].get.security).toEqual([{ agentCertificate: [] }]);
    expect(spec.paths["/agent/renew"].post.security).toEqual([{ agentCertificate: [] }]);
    // Public: the enrolment token in the body is the credential.
    expect(spec.paths["/agent/enroll"].post.security).toEqual([]);
    expect(spec.paths["/healthz"].get.security).toEqual([]);
  });

  it("every operation has a unique camelCase operationId and declares its security", () => {
    const ids = operations().map(({ path, method, op }) => {
      expect(op.operationId, `${method.toUpperCase()} ${path}`).toMatch(/^[a-z][a-zA-Z0-9]*$/);
      expect(op.security, `${method.toUpperCase()} ${path}`).toEqual(expect.any(Array));
      return op.operationId;
    });
    expect(new Set(ids).size).toBe(ids.length);
  });

  it("every request and response body is a named component schema", () => {
    const unnamed: string[] = [];
    for (const { path, method, op } of operations()) {
      const where = `${method.toUpperCase()} ${path}`;
      const bodies = [
        ...(op.requestBody ? [["request", resolve(op.requestBody)] as const] : []),
        ...Object.entries(op.responses ?? {}).map(([status, r]) => [status, resolve(r)] as const),
      ];
      for (const [what, body] of bodies) {
        for (const [type, media] of Object.entries<any>(body.content ?? {})) {
          if (typeof media.schema?.$ref !== "string") unnamed.push(`${where} ${what} ${type}`);
        }
      }
    }
    expect(unnamed).toEqual([]);
  });

  it("every /api operation requires bearerAuth and documents 401 and 403 as problem+json", () => {
    const api = operations().filter((o) => o.path.startsWith("/api/"));
    expect(api.length).toBeGreaterThanOrEqual(10);
    for (const { path, method, op } of api) {
      const where = `${method.toUpperCase()} ${path}`;
      expect(op.security, where).toEqual([{ bearerAuth: [] }]);
      for (const status of ["401", "403"]) {
        const response = resolve(op.responses?.[status]);
        expect(response, `${where} ${status}`).toBeDefined();
        const schema = resolve(response.content?.[PROBLEM_JSON]?.schema);
        expect(schema, `${where} ${status} problem+json schema`).toBeDefined();
        expect(Object.keys(schema.properties)).toEqual(expect.arrayContaining(["type", "title", "status", "code", "detail"]));
        expect(schema.required).toEqual(expect.arrayContaining(["type", "title", "status", "code"]));
      }
    }
  });

  it("every operation that takes a JSON body documents 400, 413 and 415", () => {
    for (const { path, method, op } of operations()) {
      if (!op.requestBody) continue;
      const where = `${method.toUpperCase()} ${path}`;
      expect(resolve(op.requestBody).content["application/json"], where).toBeDefined();
      for (const status of ["400", "413", "415"]) expect(op.responses[status], `${where} ${status}`).toBeDefined();
    }
  });

  it("operations that accept commands document 202 with a Location header", () => {
    for (const path of ["/api/hosts/{host_id}/packages/{operation}", "/api/hosts/{host_id}/commands"]) {
      const accepted = resolve(spec.paths[path].post.responses["202"]);
      expect(accepted.headers.Location).toBeDefined();
    }
  });

  it("the agent endpoint documents the switch to WebSocket and its refusals", () => {
    const op = spec.paths["/agent/connect"].get;
    for (const status of ["101", "401", "403", "426"]) expect(op.responses[status], status).toBeDefined();
    expect(op.security ?? []).not.toContainEqual({ bearerAuth: [] });
  });
});

describe("GET /docs", () => {
  it("serves Swagger UI from this Worker's own files, over /openapi.json, under a policy naming no other origin", async () => {
    const res = await api("/docs", { token: null });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/html/);
    const csp = res.headers.get("content-security-policy") ?? "";
    for (const directive of [
      "default-src 'none'",
      "script-src 'self'",
      "style-src 'self'",
      "connect-src 'self'",
      "frame-ancestors 'none'",
    ]) {
      expect(csp).toContain(directive);
    }
    expect(csp).not.toMatch(/https?:|\*|'unsafe-/);
    const html = await res.text();
    expect(html).toContain('data-spec-url="/openapi.json"');
    const urls = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]);
    expect(urls).toEqual(expect.arrayContaining(["/docs/swagger-ui.css", "/docs/swagger-ui-bundle.js", "/docs/init.js"]));
    // Same-origin paths only, and no inline script for the policy to refuse.
    expect(urls.every((u) => u!.startsWith("/"))).toBe(true);
    expect(html).not.toMatch(/<script>|<script(?![^>]*\bsrc=)[^>]*>/);
  });
});

describe("GET /healthz", () => {
  it("answers 200 without a token", async () => {
    const res = await api("/healthz", { token: null });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: "ok", protocol_version: PROTOCOL_VERSION });
  });
});

describe("unknown routes", () => {
  it.each([
    ["GET", "/nope"],
    ["GET", "/api/nope"],
    ["POST", "/api/hosts/00000000-0000-4000-8000-000000000000/reboot"],
  ])("%s %s → 404 problem+json ERR_NOT_FOUND", async (method, path) => {
    const res = await api(path, { method, token: null });
    const problem = await expectProblem(res, 404, "ERR_NOT_FOUND");
    expect(problem.instance).toBe(path);
  });

  it("a known path with an undocumented method → 404 problem+json", async () => {
    const res = await api("/api/hosts", { method: "DELETE" });
    await expectProblem(res, 404, "ERR_NOT_FOUND");
  });
});
