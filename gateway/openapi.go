package gateway

import (
	_ "embed"
	"net/http"
)

// openAPI is the public API as OpenAPI 3.0, maintained by hand beside Routes();
// TestOpenAPIMatchesRoutes fails when the two disagree.
//
//go:embed openapi.json
var openAPI []byte

func openAPIHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=300")
		_, _ = w.Write(openAPI)
	})
}
