// Swagger UI over the gateway's own OpenAPI document. It is a file of its own, not an
// inline script, so that the page's Content-Security-Policy can refuse inline scripts.
"use strict";

SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  // Each operation opened gets a URL of its own (#/tag/operation), to link to.
  deepLinking: true,
});
