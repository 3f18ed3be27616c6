package app

import (
	"context"
	"fmt"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// listen opens addr; with reusePort, SO_REUSEPORT lets a second process listen on the
// same port while the first still serves, so that a replacement of the edge can take
// over its port without a moment in which nothing accepts (kitshop restart gateway).
//
// Left to itself the kernel spreads new connections over the listeners by a hash, and
// closing one resets the connections waiting in its accept queue: a restart of the
// gateway under load dropped one now and then. So each listener also steers the port's
// connections to the newest of two (steerToNewest), and the one being replaced has
// nothing queued when it closes.
func listen(addr string, reusePort bool) (net.Listener, error) {
	if !reusePort {
		return net.Listen("tcp", addr)
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		return setsockopt(c, func(fd int) error {
			return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		})
	}}
	// Go listens with Multipath TCP where the kernel has it, and an MPTCP socket takes no
	// reuseport program (EOPNOTSUPP).
	lc.SetMultipathTCP(false)
	ln, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		return nil, err
	}
	raw, err := ln.(*net.TCPListener).SyscallConn()
	if err == nil {
		err = setsockopt(raw, steerToNewest)
	}
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("steer connections to the newest listener: %w", err)
	}
	return ln, nil
}

// steerToNewest attaches to the port's SO_REUSEPORT group a classic BPF program that
// picks the listener at index 1: the second to join, the replacement, while two share
// the port. With one listener left the index is out of range and the kernel falls back
// to its hash, which then has one choice; the replacement's own replacement joins at
// index 1 again. The program belongs to the group, so the last one attached is in force.
func steerToNewest(fd int) error {
	program := []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: 1}}
	return unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_REUSEPORT_CBPF,
		&unix.SockFprog{Len: uint16(len(program)), Filter: &program[0]})
}

func setsockopt(c syscall.RawConn, set func(fd int) error) error {
	var setErr error
	if err := c.Control(func(fd uintptr) { setErr = set(int(fd)) }); err != nil {
		return err
	}
	return setErr
}
