import { Hono } from "hono";
import type { AppEnv } from "./common.ts";

/**
 * The API explorer's policy: everything from this origin, nothing inline, no third party — so the
 * page renders on a machine without internet and under a strict policy. Swagger UI's own files
 * (`/docs/swagger-ui-bundle.js`, `/docs/swagger-ui.css`) are copied from `swagger-ui-dist` into the
 * dashboard's assets by `npm run build:dashboard`; `/docs/init.js` (dashboard/public/docs/) starts it.
 * `img-src data:` is for the icons Swagger UI's stylesheet embeds.
 */
export const DOCS_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; " +
  "frame-ancestors 'none'; base-uri 'none'; form-action 'none'; object-src 'none'";

const PAGE = `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>Fleet relay API</title>
    <link rel="stylesheet" href="/docs/swagger-ui.css" />
  </head>
  <body>
    <noscript>The API explorer needs JavaScript; the document itself is at <a href="/openapi.json">/openapi.json</a>.</noscript>
    <main id="swagger-ui" data-spec-url="/openapi.json"></main>
    <script src="/docs/swagger-ui-bundle.js"></script>
    <script src="/docs/init.js"></script>
  </body>
</html>
`;

/** `GET /docs`: Swagger UI over `/openapi.json`, served by this Worker (not part of the spec: it is a page, not an API). */
export const docsRoutes = new Hono<AppEnv>().get("/docs", (c) =>
  c.html(PAGE, 200, { "Content-Security-Policy": DOCS_CSP, "Cache-Control": "no-cache" }),
);
