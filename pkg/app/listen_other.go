//go:build !linux

package app

import (
	"errors"
	"net"
)

// listen opens addr; SO_REUSEPORT is used on Linux only.
func listen(addr string, reusePort bool) (net.Listener, error) {
	if reusePort {
		return nil, errors.New("-reuse-port needs Linux")
	}
	return net.Listen("tcp", addr)
}
