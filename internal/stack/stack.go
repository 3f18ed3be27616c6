// Package stack runs the whole kitshop on one machine without Docker: a Consul dev
// agent, instances of every service on free ports, and the gateway. The kitshop command
// and the end-to-end tests drive it.
package stack

import (
	"bufio"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	consul "github.com/hashicorp/consul/api"
	_ "github.com/lib/pq" // the PostgreSQL driver, to check the server is reachable
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
	// TLS "off" runs every hop in plain HTTP (for tcpdump); otherwise services talk
	// mTLS with Consul Connect's CA under Intentions, and the gateway serves HTTPS too.
	TLS string `json:"tls,omitempty"`
	// TLSCert and TLSKey are the gateway's certificate; empty: a demo certificate for
	// localhost, signed by a CA made in <state>/tls.
	TLSCert string `json:"tls_cert,omitempty"`
	TLSKey  string `json:"tls_key,omitempty"`
	// Progress receives one line per step; nil prints nothing.
	Progress io.Writer `json:"-"`
}

// service is one kind of process the stack runs.
type service struct {
	name     string
	pkg      string // main package, relative to the root
	database bool   // gets a database of its own
	amqp     bool   // publishes or consumes events
}

// services in start order: the gateway last, when everything it routes to is up.
var services = []service{
	{name: "user", pkg: "./user/cmd/user", database: true},
	{name: "inventory", pkg: "./inventory/cmd/inventory", database: true},
	{name: "payment", pkg: "./payment/cmd/payment", database: true},
	// notification before order: its queue must exist before the first event is published.
	{name: "notification", pkg: "./notification/cmd/notification", database: true, amqp: true},
	{name: "order", pkg: "./order/cmd/order", database: true, amqp: true},
	{name: "gateway", pkg: "./gateway/cmd/gateway"},
}

func lookup(name string) (service, bool) {
	for _, svc := range services {
		if svc.name == name {
			return svc, true
		}
	}
	return service{}, false
}

// Proc is a process the stack started.
type Proc struct {
	Name    string `json:"name"`
	Service string `json:"service"`
	PID     int    `json:"pid"`
	Log     string `json:"log"`
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

	edgeCert, edgeKey string
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
	if old, err := Load(o.State); err == nil && old.alive() {
		return nil, fmt.Errorf("a stack is already running (state %s); stop it first", o.State)
	}
	if err := portFree(o.GatewayAddr); err != nil {
		return nil, fmt.Errorf("gateway address %s is taken (%v); stop what uses it or choose another", o.GatewayAddr, err)
	}
	if o.DBPrefix == "" {
		o.DBPrefix = "kitshop"
	}
	s := &Stack{Options: o, GatewayURL: "http://" + o.GatewayAddr}
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
		var err error
		if s.edgeCert, s.edgeKey, err = s.edgeCertificate(); err != nil {
			return nil, fmt.Errorf("the gateway's certificate: %w", err)
		}
	}
	started := time.Now()

	s.logf("building the services")
	if err := s.build(ctx); err != nil {
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
		_ = s.Down()
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

func (s *Stack) instances(svc service) int {
	if svc.name == "gateway" {
		return 1
	}
	return s.Options.Instances
}

func (s *Stack) bin() string { return filepath.Join(s.Options.State, "bin") }

// Logs is the folder of the processes' logs, one file each.
func (s *Stack) Logs() string { return filepath.Join(s.Options.State, "logs") }

// credentials reuses or creates the admin password of this state folder.
func (s *Stack) credentials() error {
	path := filepath.Join(s.Options.State, "admin-password")
	s.AdminEmail = "admin@kitshop.local"
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

// startConsul reuses an agent that answers, or builds (consul/install.sh) and starts a
// dev agent, which the stack then owns and stops.
func (s *Stack) startConsul(ctx context.Context) error {
	addr := s.Options.ConsulAddr
	if consulLeader(addr) == nil {
		s.logf("Consul: using the agent already running at %s", addr)
		return nil
	}
	s.logf("Consul: building or reusing the agent binary (consul/install.sh; the first build takes minutes)")
	install := exec.CommandContext(ctx, "bash", filepath.Join(s.Options.Root, "consul", "install.sh"))
	install.Stderr = os.Stderr
	out, err := install.Output()
	if err != nil {
		return fmt.Errorf("consul/install.sh: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	args, err := consulArgs(addr)
	if err != nil {
		return err
	}
	args = append(args, "-config-file", filepath.Join(s.Options.Root, "consul", "dev.hcl"))
	p, err := s.spawn(Proc{Name: "consul", Service: "consul"}, lines[len(lines)-1], args, nil)
	if err != nil {
		return err
	}
	s.Procs = append(s.Procs, p)
	if err := s.save(); err != nil {
		return err
	}
	if err := waitFor(ctx, 30*time.Second, func() bool { return consulLeader(addr) == nil }); err != nil {
		return fmt.Errorf("the Consul agent did not start; see %s", p.Log)
	}
	s.logf("Consul: dev agent started at %s", addr)
	return nil
}

// RestartConsul kills the stack's own Consul agent and starts a fresh one (a dev agent
// forgets every registration; the instances register again by themselves).
func (s *Stack) RestartConsul(ctx context.Context) error {
	for i, p := range s.Procs {
		if p.Service != "consul" {
			continue
		}
		stop(p, syscall.SIGKILL)
		s.Procs = append(s.Procs[:i], s.Procs[i+1:]...)
		if err := s.startConsul(ctx); err != nil {
			return err
		}
		return s.applyIntentions()
	}
	return fmt.Errorf("this stack uses a Consul agent it did not start")
}

// consulArgs runs a dev agent with its HTTP API at addr. On the standard port 8500 the
// agent keeps its other standard ports; on any other port (a second, private agent, as
// the end-to-end tests use) its server and gossip ports follow the HTTP port and DNS and
// gRPC are off, so it does not clash with an agent on the standard ports.
func consulArgs(addr string) ([]string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("consul address %q: %w", addr, err)
	}
	args := []string{"agent", "-dev", "-client", host, "-bind", "127.0.0.1", "-http-port", port}
	if port == "8500" {
		return args, nil
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65532 {
		return nil, fmt.Errorf("consul address %q: the port must be a number from 1 to 65532", addr)
	}
	return append(args, "-server-port", strconv.Itoa(n+1), "-serf-lan-port", strconv.Itoa(n+2),
		"-serf-wan-port", strconv.Itoa(n+3), "-dns-port", "-1", "-grpc-port", "-1", "-grpc-tls-port", "-1"), nil
}

func consulLeader(addr string) error {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + addr + "/v1/status/leader")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var leader string
	if err := json.NewDecoder(resp.Body).Decode(&leader); err != nil || leader == "" {
		return fmt.Errorf("no leader")
	}
	return nil
}

// detectBackends decides between PostgreSQL and memory stores, and whether events
// flow through RabbitMQ, and says so.
func (s *Stack) detectBackends(ctx context.Context) {
	o := s.Options
	if err := pingPostgres(ctx, o.Postgres); err != nil {
		s.logf("PostgreSQL unreachable (%v): every service uses its in-memory store; data is lost when the stack stops", err)
	} else {
		s.Postgres = o.Postgres
		s.logf("PostgreSQL: one database per service (%s_<service>) on %s", o.DBPrefix, redact(o.Postgres))
	}
	if err := dialURL(o.AMQP, "5672"); err != nil {
		s.logf("RabbitMQ unreachable (%v): orders are placed but no emails are sent", err)
	} else {
		s.AMQP = o.AMQP
		s.logf("RabbitMQ: events flow through %s", redact(o.AMQP))
	}
}

func pingPostgres(ctx context.Context, dsn string) error {
	if dsn == "" {
		return errors.New("no URL")
	}
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return db.PingContext(ctx)
}

func dialURL(raw, defaultPort string) error {
	u, err := url.Parse(raw)
	if err != nil || raw == "" {
		return errors.New("no usable URL")
	}
	port := u.Port()
	if port == "" {
		port = defaultPort
	}
	conn, err := net.DialTimeout("tcp", net.JoinHostPort(u.Hostname(), port), 3*time.Second)
	if err != nil {
		return err
	}
	return conn.Close()
}

// DatabaseURL is the URL of service's database.
func (s *Stack) DatabaseURL(service string) string {
	u, err := url.Parse(s.Postgres)
	if err != nil || s.Postgres == "" {
		return ""
	}
	u.Path = "/" + s.Options.DBPrefix + "_" + service
	return u.String()
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// env is the environment of an instance of svc.
func (s *Stack) env(svc service) map[string]string {
	o := s.Options
	env := map[string]string{
		"KITSHOP_HTTP_ADDR":   "127.0.0.1:0",
		"KITSHOP_CONSUL_ADDR": o.ConsulAddr,
		"KITSHOP_ZIPKIN_URL":  o.Zipkin,
		"KITSHOP_LOG_LEVEL":   o.LogLevel,
		"KITSHOP_TLS":         "on",
		// Only the gateway has a public certificate; a value in the launcher's own
		// environment must not reach the services.
		"KITSHOP_TLS_CERT": "",
		"KITSHOP_TLS_KEY":  "",
	}
	if !o.tlsOn() {
		env["KITSHOP_TLS"] = "off"
	}
	switch svc.name {
	case "gateway":
		env["KITSHOP_HTTP_ADDR"] = o.GatewayAddr
		env["KITSHOP_TLS_CERT"], env["KITSHOP_TLS_KEY"] = s.edgeCert, s.edgeKey
	case "user":
		env["KITSHOP_KEY_FILE"] = filepath.Join(o.State, "user-keys.json")
		env["KITSHOP_ADMIN_EMAIL"] = s.AdminEmail
		env["KITSHOP_ADMIN_PASSWORD"] = s.AdminPassword
	}
	if svc.database && s.Postgres != "" {
		env["KITSHOP_DATABASE_URL"] = s.DatabaseURL(svc.name)
	}
	if svc.amqp && s.AMQP != "" {
		env["KITSHOP_AMQP_URL"] = s.AMQP
	}
	for k, v := range o.Env[svc.name] {
		env[k] = v
	}
	return env
}

// start launches instance i of svc.
func (s *Stack) start(svc service, i int) (Proc, error) {
	name := fmt.Sprintf("%s-%d", svc.name, i)
	if svc.name == "gateway" {
		name = "gateway"
	}
	p, err := s.spawn(Proc{Name: name, Service: svc.name}, filepath.Join(s.bin(), filepath.Base(svc.pkg)), nil, s.env(svc))
	if err != nil {
		return Proc{}, err
	}
	s.Procs = append(s.Procs, p)
	return p, s.save()
}

// StartInstance adds one more instance of service to the running stack.
func (s *Stack) StartInstance(service string) (Proc, error) {
	svc, ok := lookup(service)
	if !ok || svc.name == "gateway" {
		return Proc{}, fmt.Errorf("no service %q to add an instance of", service)
	}
	n := 1
	for _, p := range s.Procs {
		if p.Service == service {
			n++
		}
	}
	return s.start(svc, n)
}

// spawn starts a process in its own process group (so a Ctrl-C reaches only the
// launcher, which then stops everything in order), logging to <state>/logs/<name>.log.
func (s *Stack) spawn(p Proc, bin string, args []string, env map[string]string) (Proc, error) {
	p.Log = filepath.Join(s.Logs(), p.Name+".log")
	logFile, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return p, err
	}
	defer logFile.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if err := cmd.Start(); err != nil {
		return p, fmt.Errorf("start %s: %w", p.Name, err)
	}
	p.PID = cmd.Process.Pid
	// Reap the child when it exits, so a stopped process does not linger as a zombie
	// while the launcher runs.
	go func() { _ = cmd.Wait() }()
	return p, nil
}

// Consul is a client of the stack's Consul agent.
func (s *Stack) Consul() (*consul.Client, error) {
	conf := consul.DefaultConfig()
	conf.Address = s.Options.ConsulAddr
	return consul.NewClient(conf)
}

// WaitPassing waits until service has at least want passing instances, failing early
// when one of its processes has died.
func (s *Stack) WaitPassing(ctx context.Context, service string, want int) error {
	c, err := s.Consul()
	if err != nil {
		return err
	}
	var passing int
	err = waitFor(ctx, s.Options.Timeout, func() bool {
		entries, _, err := c.Health().Service(service, "", true, nil)
		passing = len(entries)
		return err == nil && passing >= want
	})
	if err == nil {
		return nil
	}
	for _, p := range s.Procs {
		if p.Service == service && !processAlive(p.PID) {
			return fmt.Errorf("%s exited; the end of its log (%s):\n%s", p.Name, p.Log, tail(p.Log, 15))
		}
	}
	return fmt.Errorf("%s: %d of %d instances passing after %s; see %s", service, passing, want, s.Options.Timeout, s.Logs())
}

// findGateway learns the gateway's port from Consul when it was asked to pick one
// (a gateway address ending in :0).
func (s *Stack) findGateway() error {
	if !strings.HasSuffix(s.GatewayURL, ":0") {
		return nil
	}
	c, err := s.Consul()
	if err != nil {
		return err
	}
	entries, _, err := c.Health().Service("gateway", "", true, nil)
	if err != nil || len(entries) == 0 {
		return fmt.Errorf("the gateway is not in Consul: %v", err)
	}
	e := entries[0].Service
	s.GatewayURL = "http://" + net.JoinHostPort(e.Address, strconv.Itoa(e.Port))
	s.setHTTPS()
	return s.save()
}

func (s *Stack) waitGateway(ctx context.Context) error {
	err := waitFor(ctx, s.Options.Timeout, func() bool {
		resp, err := http.Get(s.GatewayURL + "/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	if err != nil {
		return fmt.Errorf("the gateway at %s is not healthy after %s", s.GatewayURL, s.Options.Timeout)
	}
	return nil
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

// Down stops the processes in reverse start order: the gateway first, Consul last.
// Each gets SIGTERM (it deregisters and drains) and, after 15 s, SIGKILL.
func (s *Stack) Down() error {
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
