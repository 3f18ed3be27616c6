package stack

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// Proc is a process the stack started.
type Proc struct {
	Name    string `json:"name"`
	Service string `json:"service"`
	PID     int    `json:"pid"`
	Log     string `json:"log"`
}

// spawn starts a process in its own process group (so a Ctrl-C reaches only the
// launcher, which then stops everything in order), logging to <state>/logs/<name>.log.
// Unless the stack is detached (or the process is started by a later command, which
// it must outlive), the process is also told to end with the launcher.
func (s *Stack) spawn(p Proc, bin string, args []string, env map[string]string) (Proc, error) {
	p.Log = filepath.Join(s.Logs(), p.Name+".log")
	logFile, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return p, err
	}
	defer logFile.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = procAttr(s.tied())
	cmd.Env = instanceEnviron(os.Environ(), s.Environ, env)
	if err := s.startCmd(cmd); err != nil {
		return p, fmt.Errorf("start %s: %w", p.Name, err)
	}
	p.PID = cmd.Process.Pid
	// Reap the child when it exits, so a stopped process does not linger as a zombie
	// while the launcher runs.
	go func() { _ = cmd.Wait() }()
	return p, nil
}

// startCmd starts cmd. A process tied to the launcher is started by s's starter, so
// that its parent-death signal fires when the launcher ends and not before.
func (s *Stack) startCmd(cmd *exec.Cmd) error {
	if !s.tied() {
		return cmd.Start()
	}
	s.starterOnce.Do(func() { s.starter = newStarter() })
	return s.starter.start(cmd)
}

// tied reports whether processes started now end with the launcher.
func (s *Stack) tied() bool { return !s.Options.Detach && !s.untied }

// starter starts processes from one goroutine locked to its OS thread for the rest of
// the launcher's life. Linux sends a child its parent-death signal when the thread that
// forked it exits, not the process: forked from an ordinary goroutine, a child could be
// signalled whenever the Go runtime ends that thread (it ends the thread of a goroutine
// that returns while locked to it).
type starter struct {
	reqs chan startRequest
}

type startRequest struct {
	cmd  *exec.Cmd
	done chan error
}

func newStarter() *starter {
	st := &starter{reqs: make(chan startRequest)}
	go func() {
		runtime.LockOSThread() // never unlocked, and the goroutine never returns
		for req := range st.reqs {
			req.done <- req.cmd.Start()
		}
	}()
	return st
}

func (st *starter) start(cmd *exec.Cmd) error {
	done := make(chan error, 1)
	st.reqs <- startRequest{cmd: cmd, done: done}
	return <-done
}

// kitshopEnviron picks the KITSHOP_* variables of environ.
func kitshopEnviron(environ []string) map[string]string {
	vars := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "KITSHOP_") {
			vars[k] = v
		}
	}
	return vars
}

// instanceEnviron is an instance's environment: the current one without its KITSHOP_*
// variables, then the stack's recorded ones, then the instance's own (which win).
func instanceEnviron(current []string, recorded, own map[string]string) []string {
	var env []string
	for _, kv := range current {
		if !strings.HasPrefix(kv, "KITSHOP_") {
			env = append(env, kv)
		}
	}
	for _, vars := range []map[string]string{recorded, own} {
		for k, v := range vars {
			env = append(env, k+"="+v)
		}
	}
	return env
}

func waitFor(ctx context.Context, timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return errors.New("timed out")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}

// Kill sends sig to the named process (SIGKILL to crash it, SIGTERM to stop it).
func (s *Stack) Kill(name string, sig syscall.Signal) error {
	for _, p := range s.Procs {
		if p.Name == name {
			return syscall.Kill(p.PID, sig)
		}
	}
	return fmt.Errorf("no process %q in the stack", name)
}

// stop sends sig to p and waits up to 15 s for it to exit, then kills it. It reports
// whether p exited by itself.
func stop(p Proc, sig syscall.Signal) bool {
	_ = syscall.Kill(p.PID, sig)
	deadline := time.Now().Add(15 * time.Second)
	for processAlive(p.PID) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if processAlive(p.PID) {
		_ = syscall.Kill(p.PID, syscall.SIGKILL)
		return false
	}
	return true
}

func (s *Stack) alive() bool {
	for _, p := range s.Procs {
		if processAlive(p.PID) {
			return true
		}
	}
	return false
}

// Alive reports whether the process still runs.
func (p Proc) Alive() bool { return processAlive(p.PID) }

// processAlive reports whether pid runs (a zombie counts as gone).
func processAlive(pid int) bool {
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// The state follows the command name in parentheses: "pid (comm) S …".
	fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(fields) == 0 || fields[0] != "Z"
}

func portFree(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return ln.Close()
}

func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}
