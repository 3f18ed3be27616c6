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

// storefrontPolicy is the storefront's Content-Security-Policy: its own script, style
// and API only (it has no inline script or style, nor any third-party asset), no
// <base> rewriting, forms posted only to itself, and never framed (clickjacking).
const storefrontPolicy = "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// storefrontHandler serves index.html at / and the other files under /static/, with
// headers that keep a browser from running anything else in its name: the policy, no
// content-type sniffing, no framing (X-Frame-Options for browsers without
// frame-ancestors), and no URL leaking to other sites in Referer.
func storefrontHandler() http.Handler {
	root, _ := fs.Sub(storefrontFiles, "storefront")
	files := http.StripPrefix("/static/", http.FileServerFS(root))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", storefrontPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "strict-origin-when-cross-origin")
		if r.URL.Path == "/" {
			w.Header().Set("Cache-Control", "no-cache")
			http.ServeFileFS(w, r, root, "index.html")
			return
		}
		files.ServeHTTP(w, r)
	})
}
