package main

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kitshop/kitshop/internal/stack"
	"github.com/kitshop/kitshop/pkg/testenv"
)

// TestInstancesEndWithTheLauncher runs the launcher as a user does, on a small stack of
// its own (one instance each, memory stores, its own Consul agent), and ends it three
// ways: killed, Ctrl-C after its stdout was closed (`make demo | tee demo.log`), and
// detached.
func TestInstancesEndWithTheLauncher(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three stacks")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	launcher := filepath.Join(t.TempDir(), "kitshop")
	if out, err := exec.Command("go", "build", "-o", launcher, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	tests := []struct {
		name          string
		detach        bool
		end           func(t *testing.T, cmd *exec.Cmd, stdout *os.File)
		wantExit      int  // -1: killed, so no exit status
		wantInstances bool // still running after the launcher ended
	}{
		{
			name:     "kill -9",
			end:      func(t *testing.T, cmd *exec.Cmd, _ *os.File) { send(t, cmd, syscall.SIGKILL) },
			wantExit: -1,
		},
		{
			name: "Ctrl-C with stdout closed",
			end: func(t *testing.T, cmd *exec.Cmd, stdout *os.File) {
				stdout.Close()
				send(t, cmd, syscall.SIGINT)
			},
			wantExit: 0,
		},
		{
			name:          "detached",
			detach:        true,
			end:           func(*testing.T, *exec.Cmd, *os.File) {},
			wantExit:      0,
			wantInstances: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			state := t.TempDir()
			port, err := testenv.FreePorts(4)
			if err != nil {
				t.Fatal(err)
			}
			args := []string{"up", "-root", root, "-state", state, "-gateway-addr", "127.0.0.1:0",
				"-consul-addr", "127.0.0.1:" + strconv.Itoa(port), "-postgres", "", "-amqp", "",
				"-instances", "1", "-tls", "off", "-timeout", "2m"}
			if tt.detach {
				args = append(args, "-detach")
			}
			cmd := exec.Command(launcher, args...)
			stdout, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			cmd.Stdout, cmd.Stderr = w, os.Stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			w.Close()
			t.Cleanup(func() {
				_ = cmd.Process.Kill()
				_ = exec.Command(launcher, "down", "-state", state).Run()
			})
			exited := make(chan error, 1)
			ready := make(chan struct{})
			go func() {
				sc := bufio.NewScanner(stdout)
				for sc.Scan() {
					if strings.Contains(sc.Text(), "the stack is up") || strings.HasPrefix(sc.Text(), "detached") {
						close(ready)
						break
					}
				}
			}()
			go func() { exited <- cmd.Wait() }()
			if !tt.detach {
				select {
				case <-ready:
				case err := <-exited:
					t.Fatalf("the launcher exited before the stack was up: %v", err)
				case <-time.After(4 * time.Minute):
					t.Fatal("the stack did not come up in 4 minutes")
				}
			}
			s, err := stack.Load(state)
			if !tt.detach && err != nil {
				t.Fatal(err)
			}
			tt.end(t, cmd, stdout)
			var exit error
			select {
			case exit = <-exited:
			case <-time.After(5 * time.Minute):
				t.Fatal("the launcher did not end")
			}
			if s == nil {
				if s, err = stack.Load(state); err != nil {
					t.Fatal(err)
				}
			}
			if got := exitCode(exit); got != tt.wantExit {
				t.Errorf("the launcher ended with %v, want exit status %d", exit, tt.wantExit)
			}
			if len(s.Procs) < 7 {
				t.Fatalf("the stack recorded %d processes, want Consul and 6 instances", len(s.Procs))
			}
			// A signalled instance deregisters and drains first: give it the time
			// Down gives it.
			deadline := time.Now().Add(20 * time.Second)
			for running(s.Procs) != nil && !tt.wantInstances && time.Now().Before(deadline) {
				time.Sleep(100 * time.Millisecond)
			}
			switch left := running(s.Procs); {
			case tt.wantInstances && len(left) != len(s.Procs):
				t.Errorf("%d of %d processes outlived the detached launcher, want all", len(left), len(s.Procs))
			case !tt.wantInstances && left != nil:
				t.Errorf("still running after the launcher ended: %v", left)
			}
		})
	}
}

func send(t *testing.T, cmd *exec.Cmd, sig syscall.Signal) {
	t.Helper()
	if err := cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

func running(procs []stack.Proc) []string {
	var names []string
	for _, p := range procs {
		if p.Alive() {
			names = append(names, p.Name)
		}
	}
	return names
}

func exitCode(err error) int {
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		return exit.ExitCode() // -1 when a signal ended it
	}
	return -2
}
