package app

import (
	"net"
	"testing"
	"time"
)

func TestListenReusePort(t *testing.T) {
	tests := []struct {
		name        string
		first, then bool // -reuse-port of the first listener and of the second
		shared      bool // the second listens on the first one's port
	}{
		{"both reuse", true, true, true},
		{"neither", false, false, false},
		{"only the second", false, true, false},
		{"only the first", true, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			first, err := listen("127.0.0.1:0", tt.first)
			if err != nil {
				t.Fatal(err)
			}
			defer first.Close()
			second, err := listen(first.Addr().String(), tt.then)
			if err == nil {
				defer second.Close()
			}
			if shared := err == nil; shared != tt.shared {
				t.Fatalf("second listener on %s: err %v, want shared %v", first.Addr(), err, tt.shared)
			}
		})
	}
}

// TestListenReusePortSteersToNewest: while two listeners share the port (a gateway and
// its replacement), every new connection goes to the newer one, so nothing waits in the
// older one's accept queue when it closes — a close resets what is queued there.
func TestListenReusePortSteersToNewest(t *testing.T) {
	old, err := listen("127.0.0.1:0", true)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	replacement, err := listen(old.Addr().String(), true)
	if err != nil {
		t.Fatal(err)
	}
	defer replacement.Close()

	const dials = 64
	for range dials {
		c, err := net.Dial("tcp", old.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	// The kernel completes the handshakes before anyone accepts: count what waits in
	// each listener's queue.
	queued := func(ln net.Listener) int {
		n := 0
		for {
			_ = ln.(*net.TCPListener).SetDeadline(time.Now().Add(100 * time.Millisecond))
			c, err := ln.Accept()
			if err != nil {
				return n
			}
			c.Close()
			n++
		}
	}
	if got, want := [2]int{queued(old), queued(replacement)}, [2]int{0, dials}; got != want {
		t.Fatalf("connections queued at the old and the new listener: %v, want %v", got, want)
	}
	// With the old one gone, the replacement alone takes every connection.
	old.Close()
	c, err := net.Dial("tcp", replacement.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if n := queued(replacement); n != 1 {
		t.Fatalf("after the old listener closed, %d connections reached the replacement, want 1", n)
	}
}
