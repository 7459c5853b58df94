// Starts Swagger UI (loaded just before from /docs/swagger-ui-bundle.js) on this relay's own document.
// A file rather than an inline script, so /docs's Content-Security-Policy needs no 'unsafe-inline'.
// validatorUrl: null keeps Swagger UI from sending the document to validator.swagger.io for a badge.
globalThis.ui = globalThis.SwaggerUIBundle({
  url: document.getElementById("swagger-ui").dataset.specUrl,
  dom_id: "#swagger-ui",
  validatorUrl: null,
  deepLinking: true,
});
