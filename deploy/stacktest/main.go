// Command stacktest runs kitshop in containers and checks it from the outside, through
// the ports the stack publishes, as a user would meet it:
//
//	stacktest compose   make compose-test: deploy/compose.sh up, the checks, down
//	stacktest swarm     make swarm-test: a one-node swarm, docker stack deploy of
//	                    deploy/swarm/kitshop.yml, the smoke path, then removed
//
// It brings up a stack of its own (compose project kitshop-test or -project, stack kitshopt) on
// free ports, so it does not touch a stack already running, and removes it, volumes and
// all, at the end (-keep leaves it). It exits 1 at the first check that fails.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	consul "github.com/hashicorp/consul/api"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "stacktest: FAIL:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 || (args[0] != "compose" && args[0] != "swarm") {
		return errors.New("usage: stacktest compose|swarm [flags]")
	}
	mode := args[0]
	fs := flag.NewFlagSet("stacktest "+mode, flag.ExitOnError)
	root := fs.String("root", ".", "the kitshop repository")
	keep := fs.Bool("keep", false, "leave the stack running at the end (remove it with deploy/compose.sh down -v, or docker stack rm)")
	project := fs.String("project", "kitshop-test", "the compose project's name (a stack already running under another name is not touched)")
	screenshot := fs.String("screenshot", "", "also save the storefront's screenshot here (e.g. docs/storefront-docker.png)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	abs, err := filepath.Abs(*root)
	if err != nil {
		return err
	}
	t := &test{root: abs, project: *project, keep: *keep, screenshot: *screenshot, started: time.Now()}
	if mode == "swarm" {
		return t.swarm(ctx)
	}
	return t.compose(ctx)
}

// test is one run, printing a line per step with the time since it began.
type test struct {
	root       string
	project    string // of compose
	keep       bool
	screenshot string
	started    time.Time
}

func (t *test) logf(format string, args ...any) {
	el := time.Since(t.started).Round(time.Second)
	fmt.Printf("[stacktest %s +%s] %s\n", time.Now().Format("15:04:05"), el, fmt.Sprintf(format, args...))
}

// command runs name with args in the repository, its output shown, with extra env.
// Its error ends with the command's last lines on stderr (the reason it gives): the
// teardown that follows a failure prints much more, and a CI log shown only by its
// end would otherwise lose the reason.
func (t *test) command(ctx context.Context, env []string, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = t.root
	cmd.Env = append(os.Environ(), env...)
	var stderr strings.Builder
	cmd.Stdout, cmd.Stderr = os.Stdout, io.MultiWriter(os.Stderr, &stderr)
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, tail(stderr.String(), 12))
	}
	return nil
}

// output runs name with args and returns its standard output.
func (t *test) output(ctx context.Context, env []string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = t.root
	cmd.Env = append(os.Environ(), env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, tail(stderr.String(), 5))
	}
	return strings.TrimSpace(string(out)), nil
}

// freePort is a TCP port nothing listens on, on any interface, right now.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// consulClient is a client of the agent at addr with no token (Consul's anonymous one).
func consulClient(addr string) (*consul.Client, error) {
	conf := consul.DefaultConfig()
	conf.Address, conf.Token, conf.TokenFile = addr, "", ""
	return consul.NewClient(conf)
}

// compose is make compose-test.
func (t *test) compose(ctx context.Context) error {
	// Checked first, not after the minutes the stack takes to build.
	if _, err := exec.LookPath("chromium"); err != nil {
		return fmt.Errorf("the storefront check needs Debian's chromium (apt-get install chromium; make test's scripts/deps.sh installs it): %w", err)
	}
	state := filepath.Join(t.root, ".kitshop", "compose-"+t.project)
	if err := os.MkdirAll(state, 0o700); err != nil {
		return err
	}
	ports := map[string]int{}
	for _, name := range []string{"GATEWAY", "CONSUL", "ZIPKIN", "TRACES", "RABBITMQ_UI", "PROMETHEUS", "GRAFANA", "LOGS", "SYSLOG"} {
		p, err := freePort()
		if err != nil {
			return err
		}
		ports[name] = p
	}
	envFile := filepath.Join(state, "env")
	var env strings.Builder
	fmt.Fprintf(&env, "# stacktest compose: this run's passwords, published ports and rate limits\n")
	passwords := map[string]string{}
	for _, name := range []string{"POSTGRES_PASSWORD", "RABBITMQ_PASSWORD", "KITSHOP_ADMIN_PASSWORD", "GRAFANA_ADMIN_PASSWORD"} {
		passwords[name] = randomHex(12)
		fmt.Fprintf(&env, "%s=%s\n", name, passwords[name])
	}
	for name, p := range ports {
		fmt.Fprintf(&env, "KITSHOP_%s_PORT=%d\n", name, p)
	}
	// The load of the rolling check comes from one address (Docker's port proxy) and
	// would meet the per-client limits, which are not what it measures.
	for _, name := range []string{"ANON", "ANON_BURST", "USER", "USER_BURST"} {
		fmt.Fprintf(&env, "KITSHOP_RATE_%s=100000\n", name)
	}
	if err := os.WriteFile(envFile, []byte(env.String()), 0o600); err != nil {
		return err
	}
	// With the logs profile: the central log store, fed by every container.
	composeEnv := []string{"KITSHOP_COMPOSE_PROJECT=" + t.project, "KITSHOP_COMPOSE_ENV_FILE=" + envFile, "COMPOSE_PROFILES=logs"}
	composeSh := filepath.Join(t.root, "deploy", "compose.sh")

	// A stack left by an earlier run that was interrupted goes first.
	if out, _ := t.output(ctx, nil, "docker", "ps", "-aq", "--filter", "label=com.docker.compose.project="+t.project); out != "" {
		t.logf("removing the containers of an earlier run")
		if err := t.command(ctx, composeEnv, composeSh, "down", "-v"); err != nil {
			return err
		}
	}

	t.logf("make compose-up (project %s, gateway on port %d)", t.project, ports["GATEWAY"])
	upErr := t.command(ctx, composeEnv, composeSh, "up")
	checkErr := upErr
	if upErr == nil {
		checkErr = t.composeChecks(ctx, state, ports, composeEnv, composeSh)
		if checkErr == nil {
			checkErr = t.rollingUnderLoad(ctx, state, fmt.Sprintf("https://localhost:%d", ports["GATEWAY"]),
				passwords["KITSHOP_ADMIN_PASSWORD"], composeEnv, composeSh)
		}
	}
	if checkErr != nil {
		t.logf("FAILED: %v", checkErr)
		if out, err := t.output(context.Background(), composeEnv, composeSh, "compose", "ps"); err == nil {
			fmt.Println(out)
		}
		if out, err := t.output(context.Background(), composeEnv, composeSh, "compose", "logs", "--tail=15", "--no-color"); err == nil {
			fmt.Println(tail(out, 150))
		}
	}
	if t.keep {
		t.logf("-keep: the stack stays up; remove it with KITSHOP_COMPOSE_PROJECT=%s KITSHOP_COMPOSE_ENV_FILE=%s deploy/compose.sh down -v", t.project, envFile)
		return checkErr
	}
	t.logf("make compose-down (with -v: this run's volumes go too)")
	downErr := t.command(context.Background(), composeEnv, composeSh, "down", "-v")
	if downErr == nil {
		downErr = t.nothingLeft(context.Background(), "label=com.docker.compose.project="+t.project)
	}
	if checkErr != nil {
		return checkErr
	}
	if downErr != nil {
		return downErr
	}
	t.logf("PASS: compose-test in %s", time.Since(t.started).Round(time.Second))
	return nil
}

// nothingLeft checks that no container and no volume matches filter.
func (t *test) nothingLeft(ctx context.Context, filter string) error {
	containers, err := t.output(ctx, nil, "docker", "ps", "-aq", "--filter", filter)
	if err != nil {
		return err
	}
	volumes, err := t.output(ctx, nil, "docker", "volume", "ls", "-q", "--filter", filter)
	if err != nil {
		return err
	}
	if containers != "" || volumes != "" {
		return fmt.Errorf("left behind: containers %q, volumes %q", containers, volumes)
	}
	t.logf("nothing left: no container, no volume of the stack")
	return nil
}

func (t *test) composeChecks(ctx context.Context, state string, ports map[string]int, composeEnv []string, composeSh string) error {
	local := func(p int) string { return fmt.Sprintf("http://127.0.0.1:%d", p) }
	cc, err := consulClient(fmt.Sprintf("127.0.0.1:%d", ports["CONSUL"]))
	if err != nil {
		return err
	}
	plain := newAPI(local(ports["GATEWAY"]))
	gateway, err := plain.withCA(fmt.Sprintf("https://localhost:%d", ports["GATEWAY"]), filepath.Join(state, "ca.pem"))
	if err != nil {
		return err
	}
	s := &shop{
		gateway:    gateway,
		plain:      plain.noRedirects(),
		consul:     cc,
		consulHTTP: newAPI(local(ports["CONSUL"])),
		prometheus: newAPI(local(ports["PROMETHEUS"])),
		traces:     newAPI(local(ports["TRACES"])),
		logs:       newAPI(local(ports["LOGS"])),
		logf:       t.logf,
	}
	spki, err := s.gateway.leafSPKI(ctx)
	if err != nil {
		return err
	}
	png := filepath.Join(state, "storefront.png")
	if err := storefront(ctx, s.gateway.base+"/", spki, "Gopher mug", png); err != nil {
		return err
	}
	t.logf("the storefront shows the seeded catalogue in Chromium (screenshot %s)", png)
	if t.screenshot != "" {
		if err := copyFile(png, t.screenshot); err != nil {
			return err
		}
	}
	if err := s.https(ctx); err != nil {
		return err
	}
	story, err := s.story(ctx)
	if err != nil {
		return err
	}
	if err := s.tokensEverywhere(ctx, "demo@kitshop.local", "demo-password", 4); err != nil {
		return err
	}
	if err := s.trace(ctx, story.traceID, "gateway", "order", "inventory", "payment"); err != nil {
		return err
	}
	if err := s.centralLogs(ctx, story.traceID, "gateway", "order", "inventory", "payment"); err != nil {
		return err
	}
	want := map[string]int{"user": 2, "inventory": 2, "order": 2, "payment": 2, "notification": 2, "gateway": 1}
	if err := s.instances(ctx, want); err != nil {
		return err
	}
	if err := s.anonymousWrites(ctx); err != nil {
		return err
	}

	t.logf("docker-compose up --scale order=3")
	if err := t.command(ctx, composeEnv, composeSh, "compose", "up", "-d", "--no-deps", "--no-build", "--scale", "order=3", "order"); err != nil {
		return err
	}
	if err := s.instances(ctx, map[string]int{"order": 3}); err != nil {
		return err
	}
	if err := s.checkoutsReachEach(ctx, 9); err != nil {
		return err
	}
	if err := s.targetsUp(ctx); err != nil {
		return err
	}

	ids, err := t.output(ctx, composeEnv, composeSh, "compose", "ps", "-q", "inventory")
	if err != nil {
		return err
	}
	victim := strings.Fields(ids)[0]
	reads, failures, err := s.readLoop(ctx, 20*time.Second, 10, func() error {
		t.logf("docker stop %.12s (an inventory container) during the read loop", victim)
		_, err := t.output(ctx, nil, "docker", "stop", victim)
		return err
	})
	if err != nil {
		return err
	}
	if len(failures) > 0 {
		return fmt.Errorf("%d of %d catalogue reads failed while an inventory container stopped; first: %s", len(failures), reads, failures[0])
	}
	n, err := s.registered(ctx, "inventory")
	if err != nil {
		return err
	}
	if n != 1 {
		return fmt.Errorf("after one of two inventory containers stopped, Consul knows %d inventory instances, want 1 (the stopped one deregisters)", n)
	}
	t.logf("%d catalogue reads while an inventory container stopped: 0 failed; it deregistered from Consul", reads)
	return nil
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
