package app

import (
	"net/http"

	"github.com/kitshop/kitshop/pkg/clientip"
	"github.com/kitshop/kitshop/pkg/errs"
	"github.com/kitshop/kitshop/pkg/httpjson"
)

// The edge (the gateway) faces the internet, so what only operators should see —
// /metrics and the breakers and runtime data of /health — is served on the admin
// listener (-admin-addr) when there is one, and on the public port to loopback clients
// only: a load balancer's health check still gets the status of /health, and nothing
// else. A client is loopback when the address found behind the trusted proxies is: a
// proxy on the same host must be among -trusted-proxies and say whom it forwards for.

// local reports whether r comes from a client on this host.
func (a *App) local(r *http.Request) bool { return clientip.Loopback(a.clients.Addr(r)) }

// operatorsOnly serves h to the requests detailed accepts and answers 404 to others,
// as for a route that does not exist.
func operatorsOnly(h http.Handler, detailed func(*http.Request) bool) http.Handler {
	notFound := httpjson.NotFound()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !detailed(r) {
			notFound.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// always is the detail rule of the services and of the admin listener.
func always(*http.Request) bool { return true }

// errHTTPSRequired answers a plain HTTP request with a body (a password, a card
// number) from another host: redirecting it would hide that it crossed the network
// in clear, so the client is told to use HTTPS instead.
var errHTTPSRequired = errs.E(errs.Forbidden, "https_required", "this API takes requests over HTTPS only: use https:// with the same host and port")

// requireHTTPS sends plain HTTP requests from other hosts to HTTPS: a GET or HEAD is
// redirected (308) to the same URL over HTTPS, anything else is refused. Loopback
// clients (the launcher, the end-to-end tests, local curl) keep plain HTTP, and so
// does GET /health, which health checkers call over plain HTTP and which says nothing
// but a status to other hosts.
func (a *App) requireHTTPS(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.clients.HTTPS(r) || r.URL.Path == "/health" || a.local(r) {
			h.ServeHTTP(w, r)
			return
		}
		if (r.Method == http.MethodGet || r.Method == http.MethodHead) && r.Host != "" {
			http.Redirect(w, r, "https://"+r.Host+r.URL.RequestURI(), http.StatusPermanentRedirect)
			return
		}
		errs.WriteHTTP(w, errHTTPSRequired)
	})
}
