// Package stack runs the whole kitshop on one machine without Docker: a Consul dev
// agent, instances of every service on free ports, and the gateway. The kitshop command
// and the end-to-end tests drive it.
package stack

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Options say where and how the stack runs.
type Options struct {
	Root        string        `json:"root"`  // the kitshop repository
	State       string        `json:"state"` // binaries, logs, pids, keys
	GatewayAddr string        `json:"gateway_addr"`
	ConsulAddr  string        `json:"consul_addr"` // a dev agent is started there if none answers
	Postgres    string        `json:"-"`           // server URL; a database per service (memory stores when unreachable)
	DBPrefix    string        `json:"db_prefix"`   // databases are <prefix>_<service>
	AMQP        string        `json:"-"`           // RabbitMQ (no events when unreachable)
	Zipkin      string        `json:"zipkin,omitempty"`
	Instances   int           `json:"instances"` // of every service but the gateway
	Timeout     time.Duration `json:"timeout"`   // to become healthy
	LogLevel    string        `json:"log_level"`
	// Env adds or overrides environment variables of every instance of a service:
	// {"payment": {"KITSHOP_PROCESSOR_FAILURE_RATE": "0.3"}}.
	Env map[string]map[string]string `json:"env,omitempty"`
	// Binaries runs, for a service, the binary at a path instead of the one built from
	// Root: an earlier release beside the current one, to see both serve together. A
	// later restart -build replaces it with Root's.
	Binaries map[string]string `json:"binaries,omitempty"`
	// TLS "off" runs every hop in plain HTTP (for tcpdump); otherwise services talk
	// mTLS with Consul Connect's CA under Intentions, and the gateway serves HTTPS too.
	TLS string `json:"tls,omitempty"`
	// TLSCert and TLSKey are the gateway's certificate; empty: a demo certificate for
	// localhost, signed by a CA made in <state>/tls.
	TLSCert string `json:"tls_cert,omitempty"`
	TLSKey  string `json:"tls_key,omitempty"`
	// AdminEmail and AdminPassword are the admin account's; empty: DefaultAdminEmail,
	// and a password generated once and kept in <state>/admin-password.
	AdminEmail    string `json:"admin_email,omitempty"`
	AdminPassword string `json:"-"`
	// Detach leaves the processes running when the launcher ends (kitshop up -detach);
	// otherwise they end with it, however it ends — Ctrl-C, a crash, a kill -9.
	Detach bool `json:"detach"`
	// Progress receives one line per step; nil prints nothing.
	Progress io.Writer `json:"-"`
}

// Stack is a running kitshop, as recorded in <state>/stack.json so that `down`,
// `status` and the end-to-end tests can find it.
type Stack struct {
	Options       Options `json:"options"`
	GatewayURL    string  `json:"gateway_url"`
	GatewayHTTPS  string  `json:"gateway_https,omitempty"` // the same port over HTTPS, when TLS is on
	CACert        string  `json:"ca_cert,omitempty"`       // the demo CA that signed the gateway's certificate
	Postgres      string  `json:"postgres,omitempty"`      // empty: memory stores
	AMQP          string  `json:"amqp,omitempty"`          // empty: no events
	AdminEmail    string  `json:"admin_email"`
	AdminPassword string  `json:"admin_password"`
	Procs         []Proc  `json:"procs"`
	// Environ is the KITSHOP_* environment of the command that started the stack (the
	// README's raised rate limits, say). Every instance gets it, also one started
	// later by scale or restart from another shell.
	Environ map[string]string `json:"environ,omitempty"`

	edgeCert, edgeKey string
	untied            bool // processes started now outlive the launcher (Change)
	starterOnce       sync.Once
	starter           *starter
}

func stackFile(state string) string { return filepath.Join(state, "stack.json") }

// Load reads the stack recorded in the state folder.
func Load(state string) (*Stack, error) {
	b, err := os.ReadFile(stackFile(state))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no stack recorded in %s", state)
	}
	if err != nil {
		return nil, err
	}
	var s Stack
	return &s, json.Unmarshal(b, &s)
}

func (s *Stack) save() error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(stackFile(s.Options.State), b, 0o600)
}

func (s *Stack) logf(format string, args ...any) {
	if s.Options.Progress != nil {
		fmt.Fprintf(s.Options.Progress, "[%s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
	}
}

// Up builds what is missing and starts the stack, returning once every instance
// passes its Consul check and the catalogue is seeded.
func Up(ctx context.Context, o Options) (*Stack, error) {
	unlock, err := lockState(o.State)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if old, err := Load(o.State); err == nil && old.alive() {
		return nil, fmt.Errorf("a stack is already running (state %s); stop it first", o.State)
	}
	if err := portFree(o.GatewayAddr); err != nil {
		return nil, fmt.Errorf("gateway address %s is taken (%v); stop what uses it or choose another", o.GatewayAddr, err)
	}
	if o.DBPrefix == "" {
		o.DBPrefix = "kitshop"
	}
	s := &Stack{Options: o, GatewayURL: "http://" + o.GatewayAddr, Environ: kitshopEnviron(os.Environ())}
	s.setHTTPS()
	for _, dir := range []string{s.bin(), s.Logs()} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
	}
	if err := s.credentials(); err != nil {
		return nil, err
	}
	if o.tlsOn() {
		if s.edgeCert, s.edgeKey, err = s.edgeCertificate(); err != nil {
			return nil, fmt.Errorf("the gateway's certificate: %w", err)
		}
	}
	started := time.Now()

	s.logf("building the services")
	if err := s.build(ctx); err != nil {
		return nil, err
	}
	if err := s.placeBinaries(); err != nil {
		return nil, err
	}
	if err := s.startConsul(ctx); err != nil {
		return nil, err
	}
	if err := s.applyIntentions(); err != nil {
		return nil, err
	}
	s.detectBackends(ctx)

	// From here on, a failure stops whatever was started.
	fail := func(err error) (*Stack, error) {
		_ = s.down()
		return nil, err
	}
	for _, svc := range services {
		for i := 1; i <= s.instances(svc); i++ {
			if _, err := s.start(svc, i); err != nil {
				return fail(err)
			}
			if svc.name == "user" && i == 1 {
				// The first user instance creates the shared signing keyring; the
				// others must read it, not race to create their own.
				if err := s.WaitPassing(ctx, "user", 1); err != nil {
					return fail(err)
				}
			}
		}
	}
	s.logf("waiting for every instance to pass its health check in Consul")
	for _, svc := range services {
		if err := s.WaitPassing(ctx, svc.name, s.instances(svc)); err != nil {
			return fail(err)
		}
	}
	if err := s.findGateway(); err != nil {
		return fail(err)
	}
	if err := s.waitGateway(ctx); err != nil {
		return fail(err)
	}
	s.logf("all %d processes are healthy after %s", len(s.Procs), time.Since(started).Round(100*time.Millisecond))
	if err := Seed(ctx, s); err != nil {
		return fail(fmt.Errorf("seeding the catalogue: %w", err))
	}
	return s, nil
}

func (s *Stack) bin() string { return filepath.Join(s.Options.State, "bin") }

// Logs is the folder of the processes' logs, one file each.
func (s *Stack) Logs() string { return filepath.Join(s.Options.State, "logs") }

// DefaultAdminEmail is the admin account of a stack not given one.
const DefaultAdminEmail = "admin@kitshop.local"

// credentials takes the admin account from the options or, for what they leave empty,
// DefaultAdminEmail and the password this state folder keeps (made on the first run).
// A password given in the options is not written to the state folder.
func (s *Stack) credentials() error {
	s.AdminEmail, s.AdminPassword = s.Options.AdminEmail, s.Options.AdminPassword
	if s.AdminEmail == "" {
		s.AdminEmail = DefaultAdminEmail
	}
	if s.AdminPassword != "" {
		return nil
	}
	path := filepath.Join(s.Options.State, "admin-password")
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) >= 12 {
		s.AdminPassword = strings.TrimSpace(string(b))
		return nil
	}
	raw := make([]byte, 12)
	if _, err := rand.Read(raw); err != nil {
		return err
	}
	s.AdminPassword = hex.EncodeToString(raw)
	return os.WriteFile(path, []byte(s.AdminPassword+"\n"), 0o600)
}

// placeBinaries puts the binaries of Options.Binaries where the built ones were.
func (s *Stack) placeBinaries() error {
	for name, path := range s.Options.Binaries {
		svc, err := lookup(name)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("the binary given for %s: %w", name, err)
		}
		bin := filepath.Join(s.bin(), filepath.Base(svc.pkg))
		if err := os.WriteFile(bin+".new", b, 0o755); err != nil {
			return err
		}
		if err := os.Rename(bin+".new", bin); err != nil {
			return err
		}
	}
	return nil
}

func (s *Stack) build(ctx context.Context) error {
	args := []string{"build", "-o", s.bin() + string(filepath.Separator)}
	for _, svc := range services {
		args = append(args, svc.pkg)
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = s.Options.Root
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build: %w", err)
	}
	return nil
}

// Down stops the processes in reverse start order: the gateway first, Consul last.
// Each gets SIGTERM (it deregisters and drains) and, after 15 s, SIGKILL. It stops
// what the state file records, which includes instances that scale or restart
// started after this Stack was loaded.
func (s *Stack) Down() error {
	unlock, err := lockState(s.Options.State)
	if err != nil {
		return err
	}
	defer unlock()
	if recorded, err := Load(s.Options.State); err == nil {
		s.Procs = recorded.Procs
	}
	return s.down()
}

func (s *Stack) down() error {
	for i := len(s.Procs) - 1; i >= 0; i-- {
		p := s.Procs[i]
		if !processAlive(p.PID) {
			continue
		}
		if stop(p, syscall.SIGTERM) {
			s.logf("stopped %s", p.Name)
		} else {
			s.logf("%s did not stop in 15 s; killed it", p.Name)
		}
	}
	if err := os.Remove(stackFile(s.Options.State)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
