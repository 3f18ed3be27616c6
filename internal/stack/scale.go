package stack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// Change runs f on the stack recorded in state, holding the state folder's lock, so
// that commands changing a running stack (scale, restart, down, and up while it
// starts) do so one at a time and each sees what the others recorded. Processes f
// starts outlive the command that runs it: down stops them.
func Change(state string, progress io.Writer, f func(*Stack) error) error {
	unlock, err := lockState(state)
	if err != nil {
		return err
	}
	defer unlock()
	s, err := Load(state)
	if err != nil {
		return err
	}
	if !s.alive() {
		return fmt.Errorf("the stack recorded in %s is not running", state)
	}
	s.Options.Progress, s.untied = progress, true
	return f(s)
}

// lockState takes <state>/stack.lock (flock: released when the process ends, however
// it ends).
func lockState(state string) (unlock func(), err error) {
	if err := os.MkdirAll(state, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(state, "stack.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	return func() { f.Close() }, nil
}

// Scale starts or stops instances of service until n of them run and pass their
// Consul check. It stops the newest first, each the graceful way: SIGTERM, on which
// the instance deregisters, drains and exits.
func (s *Stack) Scale(ctx context.Context, service string, n int) error {
	svc, err := lookup(service)
	if err != nil {
		return err
	}
	if svc.name == "gateway" {
		return errors.New("the gateway is the stack's one listener on its address; scale the services behind it (restart gateway replaces it)")
	}
	if n < 1 {
		return fmt.Errorf("%s needs at least 1 instance, not %d", service, n)
	}
	running := s.procsOf(service)
	// One at a time: a new instance is slow for its first seconds (sessions, TLS
	// handshakes with every caller), and two cold ones at once take a read's every try.
	for i := len(running); i < n; i++ {
		p, err := s.start(svc, s.nextIndex(service))
		if err != nil {
			return err
		}
		if err := s.waitInstance(ctx, p, i+1); err != nil {
			return err
		}
		s.logf("started %s; it passes", p.Name)
	}
	for i := len(running) - 1; i >= n; i-- {
		if err := s.stopProc(running[i]); err != nil {
			return err
		}
	}
	if err := s.WaitPassing(ctx, service, n); err != nil {
		return err
	}
	s.logf("%s: %d instances pass in Consul", service, n)
	return nil
}

// Restart replaces every instance of service, one at a time: it starts the
// replacement, waits until it passes its check, then stops the old instance the
// graceful way. With build, it first builds the service's binary afresh; a failed
// build stops nothing. The gateway's replacement listens on the same port beside the
// old one (SO_REUSEPORT) until the old one has drained.
func (s *Stack) Restart(ctx context.Context, service string, build bool) error {
	svc, err := lookup(service)
	if err != nil {
		return err
	}
	if build {
		s.logf("building %s", svc.name)
		if err := s.buildOne(ctx, svc); err != nil {
			return err
		}
	}
	if svc.name == "gateway" && s.Options.tlsOn() {
		if s.edgeCert, s.edgeKey, err = s.edgeCertificate(); err != nil {
			return fmt.Errorf("the gateway's certificate: %w", err)
		}
	}
	old := s.procsOf(service)
	for _, p := range old {
		next, err := s.start(svc, s.nextIndex(service))
		if err != nil {
			return err
		}
		if err := s.waitInstance(ctx, next, len(s.procsOf(service))); err != nil {
			return err
		}
		if svc.name == "gateway" {
			s.logf("the new gateway (pid %d) serves; stopping the old one (pid %d)", next.PID, p.PID)
		} else {
			s.logf("%s passes; stopping %s", next.Name, p.Name)
		}
		if err := s.stopProc(p); err != nil {
			return err
		}
	}
	s.logf("%s: %d instances replaced", service, len(old))
	return nil
}

// waitInstance waits until p passes its Consul check. A service's instance is found by
// its tag, its name; the gateway's replacement answers on the same address as the old
// one, so it is known by a second passing registration (which it makes once it serves).
func (s *Stack) waitInstance(ctx context.Context, p Proc, running int) error {
	if p.Service == "gateway" {
		return s.WaitPassing(ctx, "gateway", running)
	}
	c, err := s.Consul()
	if err != nil {
		return err
	}
	err = waitFor(ctx, s.Options.Timeout, func() bool {
		entries, _, err := c.Health().Service(p.Service, p.Name, true, nil)
		return (err == nil && len(entries) > 0) || !p.Alive()
	})
	if !p.Alive() {
		return fmt.Errorf("%s exited; the end of its log (%s):\n%s", p.Name, p.Log, tail(p.Log, 15))
	}
	if err != nil {
		return fmt.Errorf("%s does not pass its check after %s; see %s", p.Name, s.Options.Timeout, p.Log)
	}
	return nil
}

// stopProc stops p the graceful way and forgets it.
func (s *Stack) stopProc(p Proc) error {
	if stop(p, syscall.SIGTERM) {
		s.logf("stopped %s", p.Name)
	} else {
		s.logf("%s did not stop in 15 s; killed it", p.Name)
	}
	for i, q := range s.Procs {
		if q.PID == p.PID {
			s.Procs = append(s.Procs[:i], s.Procs[i+1:]...)
			break
		}
	}
	return s.save()
}

// procsOf returns the running processes of service, oldest first (one that crashed
// is neither scaled nor replaced: it is gone).
func (s *Stack) procsOf(service string) []Proc {
	var ps []Proc
	for _, p := range s.Procs {
		if p.Service == service && p.Alive() {
			ps = append(ps, p)
		}
	}
	return ps
}

// nextIndex numbers a new instance of service past every recorded one, so that a
// replacement never takes an old instance's name (nor its Consul tag) while both run.
func (s *Stack) nextIndex(service string) int {
	n := 0
	for _, p := range s.Procs {
		if p.Service != service {
			continue
		}
		if i, err := strconv.Atoi(strings.TrimPrefix(p.Name, service+"-")); err == nil && i > n {
			n = i
		}
	}
	return n + 1
}

// buildOne builds svc's binary beside the running one and renames it into place, so a
// failed build leaves the old binary, and running instances keep theirs.
func (s *Stack) buildOne(ctx context.Context, svc service) error {
	bin := filepath.Join(s.bin(), filepath.Base(svc.pkg))
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin+".new", svc.pkg)
	cmd.Dir = s.Options.Root
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s: %w (nothing was restarted)", svc.pkg, err)
	}
	return os.Rename(bin+".new", bin)
}

func serviceNames() []string {
	var names []string
	for _, svc := range services {
		names = append(names, svc.name)
	}
	sort.Strings(names)
	return names
}
