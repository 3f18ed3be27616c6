package clientip_test

import (
	"crypto/tls"
	"net/http"
	"net/netip"
	"testing"

	"github.com/kitshop/kitshop/pkg/clientip"
)

func TestParsePrefixes(t *testing.T) {
	got, err := clientip.ParsePrefixes(" 10.0.0.0/8, 192.0.2.7,2001:db8::1/32 ,, ::ffff:198.51.100.1")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32", "198.51.100.1/32"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Fatalf("prefix %d = %s, want %s", i, got[i], want[i])
		}
	}
	for _, bad := range []string{"10.0.0.0/33", "proxy.example.com", "10.0.0/8"} {
		if _, err := clientip.ParsePrefixes(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if p, err := clientip.ParsePrefixes(""); err != nil || len(p) != 0 {
		t.Fatalf("empty list: %v, %v", p, err)
	}
}

func TestAddr(t *testing.T) {
	proxies, err := clientip.ParsePrefixes("10.0.0.0/8, 2001:db8:ffff::/48")
	if err != nil {
		t.Fatal(err)
	}
	behind := clientip.New(proxies)
	tests := []struct {
		name     string
		resolver clientip.Resolver
		remote   string
		xff      []string
		want     string
	}{
		{"no proxy trusted: the peer", clientip.Resolver{}, "203.0.113.5:4000", []string{"198.51.100.1"}, "203.0.113.5"},
		{"untrusted peer's header ignored", behind, "203.0.113.5:4000", []string{"198.51.100.1"}, "203.0.113.5"},
		{"trusted proxy: the address it saw", behind, "10.0.0.2:4000", []string{"198.51.100.1"}, "198.51.100.1"},
		{"client's own entries ignored", behind, "10.0.0.2:4000", []string{"1.2.3.4, 198.51.100.1"}, "198.51.100.1"},
		{"two trusted proxies", behind, "10.0.0.2:4000", []string{"1.2.3.4, 198.51.100.1, 10.9.9.9"}, "198.51.100.1"},
		{"several header lines", behind, "10.0.0.2:4000", []string{"1.2.3.4", "198.51.100.1, 10.9.9.9"}, "198.51.100.1"},
		{"trusted proxy without header", behind, "10.0.0.2:4000", nil, "10.0.0.2"},
		{"only proxies: the first", behind, "10.0.0.2:4000", []string{"10.1.1.1, 10.9.9.9"}, "10.1.1.1"},
		{"garbage entry: the proxy that passed it", behind, "10.0.0.2:4000", []string{"198.51.100.1, bogus, 10.9.9.9"}, "10.9.9.9"},
		{"IPv6 client behind an IPv6 proxy", behind, "[2001:db8:ffff::1]:4000", []string{"2001:db8:1:2:3:4:5:6"}, "2001:db8:1:2:3:4:5:6"},
		{"IPv4-mapped peer", behind, "[::ffff:10.0.0.2]:4000", []string{"198.51.100.1"}, "198.51.100.1"},
		{"no port in RemoteAddr", behind, "10.0.0.2", []string{"198.51.100.1"}, "invalid IP"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &http.Request{RemoteAddr: tt.remote, Header: http.Header{}}
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := tt.resolver.Addr(r).String(); got != tt.want {
				t.Fatalf("Addr = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestHTTPS(t *testing.T) {
	behind := clientip.New([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")})
	tests := []struct {
		name   string
		remote string
		tls    bool
		proto  string
		want   bool
	}{
		{"TLS on the connection", "203.0.113.5:1", true, "", true},
		{"plain from a client", "203.0.113.5:1", false, "https", false},
		{"plain from a trusted proxy that got HTTPS", "10.0.0.2:1", false, "https", true},
		{"plain from a trusted proxy that got HTTP", "10.0.0.2:1", false, "http", false},
		{"trusted proxy, no header", "10.0.0.2:1", false, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &http.Request{RemoteAddr: tt.remote, Header: http.Header{}}
			if tt.tls {
				r.TLS = &tls.ConnectionState{}
			}
			if tt.proto != "" {
				r.Header.Set("X-Forwarded-Proto", tt.proto)
			}
			if got := behind.HTTPS(r); got != tt.want {
				t.Fatalf("HTTPS = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestKey(t *testing.T) {
	tests := []struct{ addr, want string }{
		{"198.51.100.7", "198.51.100.7"},
		{"::ffff:198.51.100.7", "198.51.100.7"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
		{"2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"},
		{"fe80::1%eth0", "fe80::/64"},
		{"::1", "::/64"},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			if got := clientip.Key(netip.MustParseAddr(tt.addr)); got != tt.want {
				t.Fatalf("Key = %s, want %s", got, tt.want)
			}
		})
	}
	if k := clientip.Key(netip.Addr{}); k != "" {
		t.Fatalf("Key of no address = %q", k)
	}
	if a, b := clientip.Key(netip.MustParseAddr("2001:db8::1")), clientip.Key(netip.MustParseAddr("2001:db8::2")); a != b {
		t.Fatalf("two addresses of one /64 have keys %s and %s", a, b)
	}
}

func TestLoopback(t *testing.T) {
	for addr, want := range map[string]bool{"127.0.0.1": true, "127.8.9.10": true, "::1": true, "::ffff:127.0.0.1": true, "10.0.0.1": false, "::": false} {
		if got := clientip.Loopback(netip.MustParseAddr(addr)); got != want {
			t.Errorf("Loopback(%s) = %v", addr, got)
		}
	}
	if clientip.Loopback(netip.Addr{}) {
		t.Error("no address is loopback")
	}
}
