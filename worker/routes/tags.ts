import { createRoute } from "@hono/zod-openapi";
import { HostTags, HostTagsUpdate, TagListQuery, TagPage } from "../../schemas/index.ts";
import { ErrorCode, RelayError, unwrap } from "../errors.ts";
import { listTags, replaceHostTags } from "../registry-targets.ts";
import { hostRelay } from "../stubs.ts";
import { BEARER, createRouter, HostIdParam, jsonBody, jsonContent, problems, requireRole } from "./common.ts";

const putTagsRoute = createRoute({
  method: "put",
  path: "/api/hosts/{host_id}/tags",
  operationId: "replaceHostTags",
  tags: ["hosts"],
  summary: "Replace a host's tags",
  description:
    "The given set replaces the host's tags in one step; jobs targeting tags see it from the next job on, and the host's events carry it.",
  security: BEARER,
  middleware: [requireRole("admin")] as const,
  request: { params: HostIdParam, body: jsonBody(HostTagsUpdate, "The host's complete new tag set") },
  responses: { 200: jsonContent(HostTags, "The host's tags, sorted"), ...problems(400, 401, 403, 404, 413, 415) },
});

const listTagsRoute = createRoute({
  method: "get",
  path: "/api/tags",
  operationId: "listTags",
  tags: ["hosts"],
  summary: "Tags in use, with how many non-revoked hosts carry each",
  security: BEARER,
  middleware: [requireRole("viewer")] as const,
  request: { query: TagListQuery },
  responses: { 200: jsonContent(TagPage, "One page, by tag"), ...problems(400, 401, 403) },
});

const TAG_CURSOR = /^t([a-z0-9][a-z0-9_.:-]{0,62})$/;

export const tagRoutes = createRouter()
  .openapi(putTagsRoute, async (c) => {
    const { host_id } = c.req.valid("param");
    const tags = [...new Set(c.req.valid("json").tags)].sort();
    if (!(await replaceHostTags(c.env.DB, host_id, tags))) {
      throw new RelayError(ErrorCode.HOST_NOT_FOUND, `host ${host_id} is not registered`);
    }
    // The registry is the record; the relay keeps a copy for the events it publishes.
    unwrap(await hostRelay(c.env, host_id).setTags(host_id, tags));
    return c.json({ host_id, tags }, 200);
  })
  .openapi(listTagsRoute, async (c) => {
    const q = c.req.valid("query");
    let after: string | undefined;
    if (q.cursor !== undefined) {
      const m = TAG_CURSOR.exec(q.cursor);
      if (!m) {
        throw new RelayError(ErrorCode.VALIDATION, "cursor: not a cursor this API returned", {
          errors: [{ path: "cursor", message: "not a cursor this API returned" }],
        });
      }
      after = m[1];
    }
    const page = await listTags(c.env.DB, { limit: q.limit, after });
    return c.json({ items: page.items, next_cursor: page.last === null ? null : `t${page.last}` }, 200);
  });
