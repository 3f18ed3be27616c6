package app

import (
	"context"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// listen opens addr; with reusePort, SO_REUSEPORT lets a second process listen on the
// same port while the first still serves, so that a replacement of the edge can take
// over its port without a moment in which nothing accepts (kitshop restart gateway).
func listen(addr string, reusePort bool) (net.Listener, error) {
	var lc net.ListenConfig
	if reusePort {
		lc.Control = func(_, _ string, c syscall.RawConn) error {
			var soErr error
			if err := c.Control(func(fd uintptr) {
				soErr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
			}); err != nil {
				return err
			}
			return soErr
		}
	}
	return lc.Listen(context.Background(), "tcp", addr)
}
