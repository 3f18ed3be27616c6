//go:build unix

package gateway

import (
	"crypto/tls"
	"errors"
	"net"
	"syscall"
)

// idleAlive reports whether an idle connection can still carry a request: reading it
// without waiting finds nothing. An upstream that closed it (EOF), reset it, or sent
// something unasked makes it unusable.
func idleAlive(c net.Conn) bool {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn() // a close_notify alert is readable on the socket too
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	alive := false
	err = raw.Read(func(fd uintptr) bool {
		var b [1]byte
		_, rerr := syscall.Read(int(fd), b[:])
		alive = errors.Is(rerr, syscall.EAGAIN)
		return true // look once; never wait
	})
	return err == nil && alive
}
