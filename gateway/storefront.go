package gateway

import (
	"embed"
	"io/fs"
	"net/http"
)

// storefrontFiles is the storefront: plain HTML, CSS and JS, no build step, no
// external assets.
//
//go:embed storefront
var storefrontFiles embed.FS

// storefrontHandler serves index.html at / and the other files under /static/.
func storefrontHandler() http.Handler {
	root, _ := fs.Sub(storefrontFiles, "storefront")
	files := http.StripPrefix("/static/", http.FileServerFS(root))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if r.URL.Path == "/" {
			w.Header().Set("Cache-Control", "no-cache")
			http.ServeFileFS(w, r, root, "index.html")
			return
		}
		files.ServeHTTP(w, r)
	})
}
