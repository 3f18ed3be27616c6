//go:build !linux

package stack

import "syscall"

// procAttr puts a process in its own process group. Only Linux can tie a process to its
// parent's life: elsewhere the instances of a launcher that was killed keep running, and
// kitshop down finds and stops them.
func procAttr(tied bool) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
