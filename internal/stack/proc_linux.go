package stack

import "syscall"

// procAttr puts a process in its own process group and, when tied, has the kernel send
// it SIGTERM (deregister, drain, exit) when the launcher ends.
func procAttr(tied bool) *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{Setpgid: true}
	if tied {
		attr.Pdeathsig = syscall.SIGTERM
	}
	return attr
}
