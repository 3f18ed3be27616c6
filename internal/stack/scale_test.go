package stack

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

func TestNextIndex(t *testing.T) {
	tests := []struct {
		name  string
		procs []string // names of the recorded processes
		want  int
	}{
		{"none yet", nil, 1},
		{"two", []string{"order-1", "order-2"}, 3},
		{"after a restart", []string{"order-3", "order-4"}, 5},
		{"a gap", []string{"order-1", "order-7"}, 8},
		{"other services do not count", []string{"inventory-9", "order-1"}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Stack{}
			for _, name := range tt.procs {
				svc := name[:len(name)-2]
				s.Procs = append(s.Procs, Proc{Name: name, Service: svc})
			}
			if got := s.nextIndex("order"); got != tt.want {
				t.Fatalf("nextIndex = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestInstanceEnviron(t *testing.T) {
	tests := []struct {
		name            string
		current         []string
		recorded, own   map[string]string
		wantKitshopVars map[string]string
	}{
		{
			name:            "the stack's variables replace the current command's",
			current:         []string{"PATH=/bin", "KITSHOP_RATE_ANON=20"},
			recorded:        map[string]string{"KITSHOP_RATE_ANON": "1e6"},
			wantKitshopVars: map[string]string{"KITSHOP_RATE_ANON": "1e6"},
		},
		{
			name:            "a later command's own variable does not leak in",
			current:         []string{"PATH=/bin", "KITSHOP_LOG_LEVEL=error"},
			wantKitshopVars: map[string]string{},
		},
		{
			name:            "the instance's own win",
			current:         []string{"PATH=/bin"},
			recorded:        map[string]string{"KITSHOP_HTTP_ADDR": "127.0.0.1:8080"},
			own:             map[string]string{"KITSHOP_HTTP_ADDR": "127.0.0.1:0"},
			wantKitshopVars: map[string]string{"KITSHOP_HTTP_ADDR": "127.0.0.1:0"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := instanceEnviron(tt.current, tt.recorded, tt.own)
			if !slices.Contains(env, "PATH=/bin") {
				t.Errorf("PATH dropped: %q", env)
			}
			// kitshopEnviron reads env as exec.Cmd does: the last value of a key wins.
			got := kitshopEnviron(env)
			if len(got) != len(tt.wantKitshopVars) {
				t.Fatalf("KITSHOP_ variables %v, want %v", got, tt.wantKitshopVars)
			}
			for k, v := range tt.wantKitshopVars {
				if got[k] != v {
					t.Errorf("%s = %q, want %q (env %q)", k, got[k], v, env)
				}
			}
		})
	}
}

func TestLockState(t *testing.T) {
	state := t.TempDir()
	unlock, err := lockState(state)
	if err != nil {
		t.Fatal(err)
	}
	tryLock := func() error {
		f, err := os.OpenFile(filepath.Join(state, "stack.lock"), os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	}
	if err := tryLock(); err == nil {
		t.Fatal("a second lock was granted while the first was held")
	}
	unlock()
	if err := tryLock(); err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
}

func TestPlaceBinaries(t *testing.T) {
	dir := t.TempDir()
	release := filepath.Join(dir, "inventory-earlier")
	if err := os.WriteFile(release, []byte("earlier release"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		binaries map[string]string
		wantErr  string
	}{
		{"none", nil, ""},
		{"one service", map[string]string{"inventory": release}, ""},
		{"unknown service", map[string]string{"warehouse": release}, `no service "warehouse"`},
		{"missing binary", map[string]string{"inventory": filepath.Join(dir, "nope")}, "the binary given for inventory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Stack{Options: Options{State: t.TempDir(), Binaries: tt.binaries}}
			if err := os.MkdirAll(s.bin(), 0o755); err != nil {
				t.Fatal(err)
			}
			err := s.placeBinaries()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for name := range tt.binaries {
				info, err := os.Stat(filepath.Join(s.bin(), name))
				if err != nil || info.Mode().Perm() != 0o755 {
					t.Fatalf("%s in bin: %v %v, want an executable", name, info, err)
				}
				if b, _ := os.ReadFile(filepath.Join(s.bin(), name)); string(b) != "earlier release" {
					t.Fatalf("%s in bin holds %q", name, b)
				}
			}
		})
	}
}
