package gateway

import "embed"

// docsFiles is Swagger UI over /openapi.json: index.html and docs.js, which starts
// Swagger UI, are kitshop's; swagger-ui/ holds the files of the npm package
// swagger-ui-dist (Apache-2.0, with its LICENSE and NOTICE), vendored and checked by
// swagger-ui/fetch.sh (the bundle gzipped, served as swagger-ui-bundle.js).
//
//go:embed docs/index.html docs/docs.js docs/swagger-ui/*.js.gz docs/swagger-ui/*.css docs/swagger-ui/*.txt docs/swagger-ui/LICENSE docs/swagger-ui/NOTICE
var docsFiles embed.FS

// docsPolicy is the storefront's policy plus images from data: URLs, which is how
// swagger-ui.css draws its icons (arrows, locks, the copy button). Everything else is
// the gateway's own: the scripts (the start-up code is docs.js, not inline), the
// style sheet, the document and the calls of "Try it out" (the document's server is
// "/", this origin).
const docsPolicy = "default-src 'self'; img-src data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// docsHandler serves Swagger UI at /docs and its files under /docs/.
func docsHandler() (page, error) {
	files, err := loadEmbedded(docsFiles, "docs")
	return page{path: "/docs", prefix: "/docs/", policy: docsPolicy, files: files}, err
}
