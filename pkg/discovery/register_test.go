package discovery

import (
	"net"
	"testing"
)

func TestRouteAddress(t *testing.T) {
	tests := []struct {
		target  string
		want    string // empty: any address of this machine that is not loopback
		wantErr bool
	}{
		{target: "127.0.0.1:8500", want: "127.0.0.1"},
		{target: "http://127.0.0.1:8500", want: "127.0.0.1"},
		{target: "[::1]:8500", want: "::1"},
		// A documentation address (TEST-NET-1): the route goes out of a real interface.
		{target: "192.0.2.1:8500"},
		{target: "127.0.0.1", wantErr: true},
		{target: "no-such-host.invalid:8500", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			got, err := RouteAddress(tt.target)
			if (err != nil) != tt.wantErr {
				t.Fatalf("RouteAddress(%q) = %q, %v; want error %v", tt.target, got, err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if tt.want != "" && got != tt.want {
				t.Fatalf("RouteAddress(%q) = %q, want %q", tt.target, got, tt.want)
			}
			if ip := net.ParseIP(got); tt.want == "" && (ip == nil || ip.IsLoopback()) {
				t.Fatalf("RouteAddress(%q) = %q, want this machine's address on an interface", tt.target, got)
			}
		})
	}
}
