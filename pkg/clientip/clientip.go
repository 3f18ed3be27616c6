// Package clientip finds the address of the client a request comes from, believing
// X-Forwarded-For and X-Forwarded-Proto only from proxies the operator named, and turns
// addresses into the keys of per-client limits.
package clientip

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// Resolver finds a request's client behind the trusted proxies. The zero Resolver
// trusts no proxy: the client is the connection's peer.
type Resolver struct {
	trusted []netip.Prefix
}

// New returns a Resolver that believes the forwarding headers of peers in trusted.
func New(trusted []netip.Prefix) Resolver { return Resolver{trusted: trusted} }

// ParsePrefixes reads a comma-separated list of CIDR prefixes or single addresses, such
// as "10.0.0.0/8, 192.0.2.7, 2001:db8::/32".
func ParsePrefixes(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range strings.Split(list, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if strings.Contains(s, "/") {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, fmt.Errorf("trusted proxy %q: %w", s, err)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q: %w", s, err)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// Trusted reports whether a is one of the trusted proxies.
func (r Resolver) Trusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range r.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Peer is the address of req's connection (invalid when RemoteAddr is not host:port,
// as in some tests).
func Peer(req *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(req.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// Addr is the client of req: its peer, unless the peer is a trusted proxy; then the
// last X-Forwarded-For address not of a trusted proxy, read from the right (each proxy
// appends the address it got the request from, and only the part the trusted proxies
// wrote can be believed). When every address is a trusted proxy's, the first one; when
// an entry is not an address, the nearest proxy that handed it over.
func (r Resolver) Addr(req *http.Request) netip.Addr {
	client := Peer(req)
	if !client.IsValid() || !r.Trusted(client) {
		return client
	}
	hops := forwarded(req.Header)
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(hops[i])
		if err != nil {
			return client
		}
		client = a.Unmap()
		if !r.Trusted(client) {
			return client
		}
	}
	return client
}

// forwarded is the X-Forwarded-For addresses of h, in order, over all its lines.
func forwarded(h http.Header) []string {
	var hops []string
	for _, line := range h.Values("X-Forwarded-For") {
		for _, hop := range strings.Split(line, ",") {
			if hop = strings.TrimSpace(hop); hop != "" {
				hops = append(hops, hop)
			}
		}
	}
	return hops
}

// HTTPS reports whether the client's request came over TLS: on this connection, or
// to a trusted proxy that says so in X-Forwarded-Proto.
func (r Resolver) HTTPS(req *http.Request) bool {
	if req.TLS != nil {
		return true
	}
	if peer := Peer(req); !peer.IsValid() || !r.Trusted(peer) {
		return false
	}
	proto, _, _ := strings.Cut(req.Header.Get("X-Forwarded-Proto"), ",")
	return strings.EqualFold(strings.TrimSpace(proto), "https")
}

// Key is the key of a client address for per-client limits: an IPv4 address itself,
// an IPv6 address's /64, the network one subscriber gets (a client with a /64 has
// 2^64 addresses to rotate through). An invalid address is the empty key.
func Key(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	a = a.Unmap()
	if a.Is4() {
		return a.String()
	}
	p, _ := a.Prefix(64)
	return p.String()
}

// Loopback reports whether a is a loopback address (127.0.0.0/8, ::1).
func Loopback(a netip.Addr) bool { return a.IsValid() && a.Unmap().IsLoopback() }
