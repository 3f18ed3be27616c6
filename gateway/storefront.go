package gateway

import "embed"

// storefrontFiles is the storefront: plain HTML, CSS and JS, no build step, no
// external assets.
//
//go:embed storefront
var storefrontFiles embed.FS

// storefrontPolicy is the storefront's Content-Security-Policy: its own script, style
// and API only (it has no inline script or style, nor any third-party asset), no
// <base> rewriting, forms posted only to itself, and never framed (clickjacking).
const storefrontPolicy = "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// storefrontHandler serves index.html at / and the other files under /static/.
func storefrontHandler() (page, error) {
	files, err := loadEmbedded(storefrontFiles, "storefront")
	return page{path: "/", prefix: "/static/", policy: storefrontPolicy, files: files}, err
}
