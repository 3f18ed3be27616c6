package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
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

// service is one kind of process the stack runs.
type service struct {
	name     string
	pkg      string            // main package, relative to the root
	database bool              // gets a database of its own
	amqp     bool              // publishes or consumes events
	env      map[string]string // service-specific settings
}

// services in start order: the gateway last, when everything it routes to is up.
func services(st *Stack) []service {
	return []service{
		{name: "user", pkg: "./user/cmd/user", database: true, env: map[string]string{
			"KITSHOP_KEY_FILE":       filepath.Join(st.State, "user-keys.json"),
			"KITSHOP_ADMIN_EMAIL":    st.AdminEmail,
			"KITSHOP_ADMIN_PASSWORD": st.AdminPassword,
		}},
		{name: "inventory", pkg: "./inventory/cmd/inventory", database: true},
		{name: "payment", pkg: "./payment/cmd/payment", database: true},
		{name: "order", pkg: "./order/cmd/order", database: true, amqp: true},
		{name: "notification", pkg: "./notification/cmd/notification", database: true, amqp: true},
		{name: "gateway", pkg: "./gateway/cmd/gateway"},
	}
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
	State         string `json:"state"`
	GatewayURL    string `json:"gateway_url"`
	ConsulAddr    string `json:"consul_addr"`
	Postgres      string `json:"postgres,omitempty"` // empty: memory stores
	AMQP          string `json:"amqp,omitempty"`     // empty: no events
	AdminEmail    string `json:"admin_email"`
	AdminPassword string `json:"admin_password"`
	Procs         []Proc `json:"procs"`
}

func stackFile(state string) string { return filepath.Join(state, "stack.json") }

func loadStack(o options) (*Stack, error) {
	b, err := os.ReadFile(stackFile(o.state))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no stack recorded in %s: nothing to do", o.state)
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
	return os.WriteFile(stackFile(s.State), b, 0o600)
}

func (s *Stack) logf(format string, args ...any) {
	fmt.Printf("[%s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// up builds what is missing and starts the stack, returning once every instance
// passes its Consul check and the catalogue is seeded.
func up(ctx context.Context, o options) (*Stack, error) {
	if old, err := loadStack(o); err == nil && old.alive() {
		return nil, fmt.Errorf("a stack is already running (state %s); stop it with `kitshop down`", o.state)
	}
	if err := portFree(o.gatewayAddr); err != nil {
		return nil, fmt.Errorf("gateway address %s is taken (%v); stop what uses it or pass -gateway-addr", o.gatewayAddr, err)
	}
	s := &Stack{State: o.state, GatewayURL: "http://" + o.gatewayAddr, ConsulAddr: o.consulAddr}
	for _, dir := range []string{s.bin(), s.logs()} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
	}
	if err := s.credentials(); err != nil {
		return nil, err
	}
	started := time.Now()

	s.logf("building the services")
	if err := s.build(ctx, o.root); err != nil {
		return nil, err
	}
	if err := s.startConsul(ctx, o.root); err != nil {
		return nil, err
	}
	s.detectBackends(ctx, o)

	// From here on, a failure stops whatever was started.
	fail := func(err error) (*Stack, error) {
		_ = s.down()
		return nil, err
	}
	for _, svc := range services(s) {
		n := o.instances
		if svc.name == "gateway" {
			n = 1
		}
		for i := 1; i <= n; i++ {
			if err := s.start(svc, i, o); err != nil {
				return fail(err)
			}
			if svc.name == "user" && i == 1 {
				// The first user instance creates the shared signing keyring; the
				// others must read it, not race to create their own.
				if err := s.waitPassing(ctx, "user", 1, o.timeout); err != nil {
					return fail(err)
				}
			}
		}
		if err := s.save(); err != nil {
			return fail(err)
		}
	}
	s.logf("waiting for every instance to pass its health check in Consul")
	for _, svc := range services(s) {
		n := o.instances
		if svc.name == "gateway" {
			n = 1
		}
		if err := s.waitPassing(ctx, svc.name, n, o.timeout); err != nil {
			return fail(err)
		}
	}
	if err := s.findGateway(); err != nil {
		return fail(err)
	}
	if err := s.waitGateway(ctx, o.timeout); err != nil {
		return fail(err)
	}
	s.logf("all %d processes are healthy after %s", len(s.Procs), time.Since(started).Round(100*time.Millisecond))
	if err := seed(ctx, s); err != nil {
		return fail(fmt.Errorf("seeding the catalogue: %w", err))
	}
	s.printURLs()
	return s, nil
}

func (s *Stack) bin() string  { return filepath.Join(s.State, "bin") }
func (s *Stack) logs() string { return filepath.Join(s.State, "logs") }

// credentials reuses or creates the admin password of this state folder.
func (s *Stack) credentials() error {
	path := filepath.Join(s.State, "admin-password")
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

func (s *Stack) build(ctx context.Context, root string) error {
	args := []string{"build", "-o", s.bin() + string(filepath.Separator)}
	for _, svc := range services(s) {
		args = append(args, svc.pkg)
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build: %w", err)
	}
	return nil
}

// startConsul reuses an agent that answers, or builds (consul/install.sh) and starts a
// dev agent, which the stack then owns and stops.
func (s *Stack) startConsul(ctx context.Context, root string) error {
	if consulLeader(s.ConsulAddr) == nil {
		s.logf("Consul: using the agent already running at %s", s.ConsulAddr)
		return nil
	}
	s.logf("Consul: building or reusing the agent binary (consul/install.sh; the first build takes minutes)")
	install := exec.CommandContext(ctx, "bash", filepath.Join(root, "consul", "install.sh"))
	install.Stderr = os.Stderr
	out, err := install.Output()
	if err != nil {
		return fmt.Errorf("consul/install.sh: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	bin := lines[len(lines)-1]
	args, err := consulArgs(s.ConsulAddr)
	if err != nil {
		return err
	}
	args = append(args, "-config-file", filepath.Join(root, "consul", "dev.hcl"))
	p, err := s.spawn(Proc{Name: "consul", Service: "consul"}, bin, args, nil)
	if err != nil {
		return err
	}
	s.Procs = append(s.Procs, p)
	deadline := time.Now().Add(30 * time.Second)
	for consulLeader(s.ConsulAddr) != nil {
		if time.Now().After(deadline) {
			return fmt.Errorf("the Consul agent did not start; see %s", p.Log)
		}
		time.Sleep(200 * time.Millisecond)
	}
	s.logf("Consul: dev agent started at %s", s.ConsulAddr)
	return s.save()
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
func (s *Stack) detectBackends(ctx context.Context, o options) {
	if err := pingPostgres(ctx, o.postgres); err != nil {
		s.logf("PostgreSQL unreachable (%v): every service uses its in-memory store; data is lost when the stack stops", err)
	} else {
		s.Postgres = o.postgres
		s.logf("PostgreSQL: one database per service on %s", redact(o.postgres))
	}
	if err := dialURL(o.amqp, "5672"); err != nil {
		s.logf("RabbitMQ unreachable (%v): orders are placed but no emails are sent", err)
	} else {
		s.AMQP = o.amqp
		s.logf("RabbitMQ: events flow through %s", redact(o.amqp))
	}
}

func pingPostgres(ctx context.Context, dsn string) error {
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
	if err != nil {
		return err
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

// databaseURL is the server URL with the service's database in the path.
func databaseURL(server, service string) string {
	u, err := url.Parse(server)
	if err != nil {
		return ""
	}
	u.Path = "/kitshop_" + service
	return u.String()
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// start launches instance i of svc with its environment.
func (s *Stack) start(svc service, i int, o options) error {
	env := map[string]string{
		"KITSHOP_HTTP_ADDR":   "127.0.0.1:0",
		"KITSHOP_CONSUL_ADDR": s.ConsulAddr,
		"KITSHOP_ZIPKIN_URL":  o.zipkin,
		"KITSHOP_LOG_LEVEL":   "info",
	}
	if svc.name == "gateway" {
		env["KITSHOP_HTTP_ADDR"] = o.gatewayAddr
	}
	if svc.database && s.Postgres != "" {
		env["KITSHOP_DATABASE_URL"] = databaseURL(s.Postgres, svc.name)
	}
	if svc.amqp && s.AMQP != "" {
		env["KITSHOP_AMQP_URL"] = s.AMQP
	}
	for k, v := range svc.env {
		env[k] = v
	}
	name := fmt.Sprintf("%s-%d", svc.name, i)
	if svc.name == "gateway" {
		name = "gateway"
	}
	p, err := s.spawn(Proc{Name: name, Service: svc.name}, filepath.Join(s.bin(), filepath.Base(svc.pkg)), nil, env)
	if err != nil {
		return err
	}
	s.Procs = append(s.Procs, p)
	return nil
}

// spawn starts a process in its own process group (so a Ctrl-C reaches only kitshop,
// which then stops everything in order), logging to <state>/logs/<name>.log.
func (s *Stack) spawn(p Proc, bin string, args []string, env map[string]string) (Proc, error) {
	p.Log = filepath.Join(s.logs(), p.Name+".log")
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
	// while kitshop runs.
	go func() { _ = cmd.Wait() }()
	return p, nil
}

func (s *Stack) consul() (*consul.Client, error) {
	conf := consul.DefaultConfig()
	conf.Address = s.ConsulAddr
	return consul.NewClient(conf)
}

// waitPassing waits until service has want passing instances, failing early when one
// of its processes has died.
func (s *Stack) waitPassing(ctx context.Context, service string, want int, timeout time.Duration) error {
	c, err := s.consul()
	if err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	for {
		entries, _, err := c.Health().Service(service, "", true, nil)
		if err == nil && len(entries) >= want {
			return nil
		}
		for _, p := range s.Procs {
			if p.Service == service && !processAlive(p.PID) {
				return fmt.Errorf("%s exited; the end of its log (%s):\n%s", p.Name, p.Log, tail(p.Log, 15))
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %d of %d instances passing after %s; see %s", service, len(entries), want, timeout, s.logs())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// findGateway learns the gateway's port from Consul when it was asked to pick one
// (-gateway-addr 127.0.0.1:0).
func (s *Stack) findGateway() error {
	if !strings.HasSuffix(s.GatewayURL, ":0") {
		return nil
	}
	c, err := s.consul()
	if err != nil {
		return err
	}
	entries, _, err := c.Health().Service("gateway", "", true, nil)
	if err != nil || len(entries) == 0 {
		return fmt.Errorf("the gateway is not in Consul: %v", err)
	}
	e := entries[0].Service
	s.GatewayURL = "http://" + net.JoinHostPort(e.Address, strconv.Itoa(e.Port))
	return s.save()
}

func (s *Stack) waitGateway(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		resp, err := http.Get(s.GatewayURL + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the gateway at %s is not healthy after %s", s.GatewayURL, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// down stops the processes in reverse start order: the gateway first, Consul last.
// Each gets SIGTERM (it deregisters and drains) and, after 15 s, SIGKILL.
func (s *Stack) down() error {
	for i := len(s.Procs) - 1; i >= 0; i-- {
		p := s.Procs[i]
		if !processAlive(p.PID) {
			continue
		}
		_ = syscall.Kill(p.PID, syscall.SIGTERM)
		deadline := time.Now().Add(15 * time.Second)
		for processAlive(p.PID) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if processAlive(p.PID) {
			s.logf("%s did not stop in 15 s; killing it", p.Name)
			_ = syscall.Kill(p.PID, syscall.SIGKILL)
		} else {
			s.logf("stopped %s", p.Name)
		}
	}
	if err := os.Remove(stackFile(s.State)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

func (s *Stack) alive() bool {
	for _, p := range s.Procs {
		if processAlive(p.PID) {
			return true
		}
	}
	return false
}

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

func (s *Stack) printURLs() {
	storage := "in-memory stores (nothing is kept)"
	if s.Postgres != "" {
		storage = "PostgreSQL, databases kitshop_<service>"
	}
	events := "off (RabbitMQ unreachable)"
	if s.AMQP != "" {
		events = "RabbitMQ exchange kitshop.events"
	}
	fmt.Printf(`
  kitshop is up
    storefront  %[1]s/
    API         %[1]s/v1/products   (OpenAPI: %[1]s/openapi.json)
    Consul UI   http://%[2]s/ui/dc1/services
    storage     %[3]s
    events      %[4]s
    admin       %[5]s / %[6]s
    demo user   %[7]s / %[8]s
    logs        %[9]s
`+"\n", s.GatewayURL, s.ConsulAddr, storage, events, s.AdminEmail, s.AdminPassword, demoEmail, demoPassword, s.logs())
}
