package user

import (
	"context"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/go-kit/kit/sd"
	kithttp "github.com/go-kit/kit/transport/http"
	"github.com/openzipkin/zipkin-go"

	"github.com/kitshop/kitshop/pkg/auth"
	"github.com/kitshop/kitshop/pkg/client"
	"github.com/kitshop/kitshop/pkg/clientip"
	"github.com/kitshop/kitshop/pkg/connect"
	"github.com/kitshop/kitshop/pkg/httpjson"
)

// jwksMaxAge is how long verifiers use the key set before fetching it again
// (auth.JWKSSource), so a key withdrawn from the keyring stops verifying everywhere
// within a minute; a verifier that meets an unknown kid fetches at once anyway.
const jwksMaxAge = 60 * time.Second

// The routes, each written once for MakeHTTPHandler and NewHTTPClient.
var (
	registerRoute = httpjson.Route{Method: http.MethodPost, Path: "/v1/users"}
	loginRoute    = httpjson.Route{Method: http.MethodPost, Path: "/v1/auth/login"}
	meRoute       = httpjson.Route{Method: http.MethodGet, Path: "/v1/users/me"}
	jwksRoute     = httpjson.Route{Method: http.MethodGet, Path: auth.JWKSPath}
)

// MakeHTTPHandler mounts the endpoints on their routes. The client address login
// throttling counts is the connection's peer, or the X-Forwarded-For address of a
// request forwarded says comes from a proxy that sets that header itself (nil: none).
func MakeHTTPHandler(e Endpoints, tracer *zipkin.Tracer, forwarded Forwarded) http.Handler {
	r := httpjson.NewRouter(tracer, kithttp.ServerBefore(clientAddr(forwarded)))
	r.Handle(registerRoute, e.RegisterEndpoint, httpjson.DecodeRequest[registerRequest], httpjson.Encode)
	r.Handle(loginRoute, e.LoginEndpoint, httpjson.DecodeRequest[loginRequest], httpjson.Encode)
	r.Handle(meRoute, e.MeEndpoint, kithttp.NopRequestDecoder, httpjson.Encode)
	r.Handle(jwksRoute, e.JWKSEndpoint, kithttp.NopRequestDecoder, encodeJWKSResponse)
	return r
}

// Forwarded reports whether r comes from a proxy whose X-Forwarded-For names the
// client.
type Forwarded func(r *http.Request) bool

// ForwardedBy believes the requests whose caller proved over mTLS to be service (the
// gateway, which replaces any X-Forwarded-For a client sends with the address it
// found). Without mTLS no caller proves anything, so nothing is believed.
func ForwardedBy(service string) Forwarded {
	return func(r *http.Request) bool {
		peer, ok := connect.PeerFrom(r.Context())
		return ok && peer.Service == service
	}
}

// clientAddr puts the key of the client's address in the context for login
// throttling: the address, or its /64 for IPv6.
func clientAddr(forwarded Forwarded) kithttp.RequestFunc {
	return func(ctx context.Context, r *http.Request) context.Context {
		if forwarded != nil && forwarded(r) {
			first, _, _ := strings.Cut(r.Header.Get("X-Forwarded-For"), ",")
			if a, err := netip.ParseAddr(strings.TrimSpace(first)); err == nil {
				return WithClientAddr(ctx, clientip.Key(a))
			}
		}
		return WithClientAddr(ctx, clientip.Key(clientip.Peer(r)))
	}
}

func encodeJWKSResponse(ctx context.Context, w http.ResponseWriter, response any) error {
	w.Header().Set("Cache-Control", "public, max-age="+strconv.Itoa(int(jwksMaxAge/time.Second)))
	return httpjson.Encode(ctx, w, response)
}

// NewHTTPClient returns the user Service of the instances instancer finds. Only
// reads are retried: a registration or a login sent twice is not the same as once.
func NewHTTPClient(instancer sd.Instancer, opts client.Options) Service {
	c := client.New("user", instancer, opts)
	return Endpoints{
		RegisterEndpoint: c.Endpoint(client.Route{Name: "register", Method: registerRoute.Method, Encode: httpjson.EncodeJSON(registerRoute), Decode: httpjson.DecodeResponse[userView]}),
		LoginEndpoint:    c.Endpoint(client.Route{Name: "login", Method: loginRoute.Method, Encode: httpjson.EncodeJSON(loginRoute), Decode: httpjson.DecodeResponse[loginResponse]}),
		MeEndpoint:       c.Endpoint(client.Route{Name: "me", Method: meRoute.Method, Encode: httpjson.EncodePath(meRoute), Decode: httpjson.DecodeResponse[userView], Idempotent: true}),
		JWKSEndpoint:     c.Endpoint(client.Route{Name: "jwks", Method: jwksRoute.Method, Encode: httpjson.EncodePath(jwksRoute), Decode: httpjson.DecodeResponse[auth.JWKS], Idempotent: true}),
	}
}
