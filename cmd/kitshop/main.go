// Command kitshop runs the whole shop on this machine without Docker: a Consul dev
// agent, two instances of every service on free ports, and the gateway.
//
//	kitshop up [-detach]   start the stack (Ctrl-C stops it; -detach leaves it running)
//	kitshop demo           start the stack, walk a shopping story, keep it up until Ctrl-C
//	kitshop status         services, instances and their health in Consul
//	kitshop down           stop a detached stack
//	kitshop scale S N      start or stop instances of service S until N pass
//	kitshop restart S      replace every instance of S, one at a time (-build: a fresh binary)
//	kitshop logs [-f]      every instance's log lines, merged in time order
//	kitshop bootstrap      prepare Consul's ACLs and the gateway's certificate (containers)
//	kitshop seed           put the demo catalogue on sale through a gateway (containers)
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kitshop/kitshop/internal/stack"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "kitshop:", err)
		os.Exit(1)
	}
}

const usage = `usage: kitshop <command> [flags]

commands:
  up       start Consul, two instances of every service and the gateway
  demo     up, then walk a shopping story through the gateway; Ctrl-C stops
  status   show every service's instances and their health in Consul
  down     stop a stack started with "up -detach"
  scale    scale <service> <n>: start or stop instances until n pass in Consul
  restart  restart <service> [-build]: replace its instances one at a time, rebuilt with -build
  logs     the logs of every instance, merged in time order (-service, -trace, -level, -since, -f)

commands of a container deployment (docker-compose.yml, deploy/swarm), run once at start:
  bootstrap  prepare Consul's ACLs (a token per service) and the gateway's certificate
  seed       put the demo catalogue on sale and create the demo shopper, through the gateway

Run "kitshop <command> -h" for the flags of a command.
`

func run(args []string) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return fmt.Errorf("no command")
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "bootstrap", "seed":
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		if cmd == "bootstrap" {
			return bootstrap(ctx, args, os.Stdout)
		}
		return seed(ctx, args, os.Stdout)
	}
	fs := flag.NewFlagSet("kitshop "+cmd, flag.ExitOnError)
	o := stack.Options{Progress: os.Stdout}
	register(fs, &o)
	detach := false
	if cmd == "up" {
		fs.BoolVar(&detach, "detach", false, "return once the stack is healthy and leave it running (stop it with kitshop down)")
	}
	build := false
	if cmd == "restart" {
		fs.BoolVar(&build, "build", false, "build the service's binary afresh first (a failed build restarts nothing)")
	}
	// scale and restart take their service (and count) before or after the flags.
	var operands []string
	if cmd == "scale" || cmd == "restart" {
		for len(args) > 0 && !strings.HasPrefix(args[0], "-") {
			operands, args = append(operands, args[0]), args[1:]
		}
	}
	var lo logsOptions
	if cmd == "logs" {
		fs.StringVar(&lo.filter.Service, "service", "", "only this service (order) or instance (order-1)")
		fs.StringVar(&lo.filter.TraceID, "trace", "", "only the lines of this trace (the X-Trace-Id of an answer)")
		fs.StringVar(&lo.filter.MinLevel, "level", "", "only lines at this level or above: debug, info, warn, error")
		fs.DurationVar(&lo.since, "since", 0, "only lines of the last D (e.g. 10m)")
		fs.BoolVar(&lo.follow, "f", false, "keep printing new lines until Ctrl-C")
		fs.BoolVar(&lo.json, "json", false, "print JSON lines (each with an instance field) instead of readable ones")
		fs.StringVar(&lo.color, "color", "auto", "colour readable lines: auto (on a terminal, unless NO_COLOR is set), always, never")
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	operands = append(operands, fs.Args()...)
	if err := resolve(&o); err != nil {
		return err
	}
	o.Detach = detach
	// A closed stdout (`make demo | tee demo.log`, and tee ended by the same Ctrl-C) must
	// not kill the launcher before it has stopped its instances: a write to it then
	// fails instead of raising SIGPIPE.
	signal.Ignore(syscall.SIGPIPE)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch cmd {
	case "up", "demo":
		s, err := stack.Up(ctx, o)
		if err != nil {
			return err
		}
		printURLs(s)
		if cmd == "demo" {
			if err := demo(ctx, s); err != nil {
				fmt.Printf("\n  The demo story stopped: %v\n  The stack stays up; its logs are in %s\n\n", err, s.Logs())
			}
		}
		if detach {
			fmt.Printf("detached: stop the stack with `make down` (or `kitshop down -state %s`)\n", s.Options.State)
			return nil
		}
		fmt.Println("the stack is up; press Ctrl-C to stop it")
		<-ctx.Done()
		fmt.Println()
		s.Options.Progress = os.Stdout
		return s.Down()
	case "status":
		return status(ctx, o)
	case "logs":
		return logs(ctx, filepath.Join(o.State, "logs"), lo, os.Stdout, isTerminal(os.Stdout))
	case "scale":
		if len(operands) != 2 {
			return fmt.Errorf("usage: kitshop scale <service> <n>")
		}
		n, err := strconv.Atoi(operands[1])
		if err != nil {
			return fmt.Errorf("kitshop scale: %q is not a number of instances", operands[1])
		}
		return stack.Change(o.State, os.Stdout, func(s *stack.Stack) error { return s.Scale(ctx, operands[0], n) })
	case "restart":
		if len(operands) != 1 {
			return fmt.Errorf("usage: kitshop restart <service> [-build]")
		}
		return stack.Change(o.State, os.Stdout, func(s *stack.Stack) error { return s.Restart(ctx, operands[0], build) })
	case "down":
		s, err := stack.Load(o.State)
		if err != nil {
			return err
		}
		s.Options.Progress = os.Stdout
		return s.Down()
	}
	fmt.Fprint(os.Stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

func register(fs *flag.FlagSet, o *stack.Options) {
	fs.StringVar(&o.Root, "root", "", "the kitshop repository (default: found from the working directory)")
	fs.StringVar(&o.State, "state", "", "state folder for binaries, logs and pids (default <root>/.kitshop)")
	fs.StringVar(&o.GatewayAddr, "gateway-addr", envOr("KITSHOP_GATEWAY_ADDR", "127.0.0.1:8080"), "where the gateway listens (port 0: a free one)")
	fs.StringVar(&o.ConsulAddr, "consul-addr", envOr("KITSHOP_CONSUL_ADDR", "127.0.0.1:8500"), "the Consul agent; a dev agent is started there if none answers")
	fs.StringVar(&o.Postgres, "postgres", envOr("KITSHOP_POSTGRES", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable&connect_timeout=5"), "PostgreSQL server; each service gets its own database on it (memory stores when unreachable)")
	fs.StringVar(&o.DBPrefix, "db-prefix", "kitshop", "databases are named <prefix>_<service>")
	fs.StringVar(&o.AMQP, "amqp", envOr("KITSHOP_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"), "RabbitMQ (no emails when unreachable)")
	fs.StringVar(&o.Zipkin, "zipkin", envOr("KITSHOP_ZIPKIN_URL", ""), "Zipkin span collector URL, if you run one")
	fs.StringVar(&o.LogLevel, "log-level", "info", "log level of every service")
	fs.IntVar(&o.Instances, "instances", 2, "instances of every service")
	fs.DurationVar(&o.Timeout, "timeout", 90*time.Second, "how long to wait for the stack to become healthy")
	fs.StringVar(&o.TLS, "tls", envOr("KITSHOP_TLS", "on"), "\"on\": mTLS between services (Consul Connect CA, intentions) and HTTPS at the gateway; \"off\": plain HTTP everywhere, e.g. for tcpdump")
	fs.StringVar(&o.TLSCert, "tls-cert", envOr("KITSHOP_TLS_CERT", ""), "the gateway's HTTPS certificate (default: one for localhost from a CA made in <state>/tls)")
	fs.StringVar(&o.TLSKey, "tls-key", envOr("KITSHOP_TLS_KEY", ""), "the key of -tls-cert")
	fs.StringVar(&o.AdminEmail, "admin-email", envOr("KITSHOP_ADMIN_EMAIL", stack.DefaultAdminEmail), "the admin account")
	// The password's default is read in resolve, not here, so that -h does not print it.
	fs.StringVar(&o.AdminPassword, "admin-password", "", "the admin's password (default: KITSHOP_ADMIN_PASSWORD, else one generated once and kept in <state>/admin-password)")
}

// resolve finds the repository and the state folder.
func resolve(o *stack.Options) error {
	if o.Root == "" {
		dir, err := os.Getwd()
		if err != nil {
			return err
		}
		for !exists(filepath.Join(dir, "go.mod")) || !exists(filepath.Join(dir, "consul", "install.sh")) {
			parent := filepath.Dir(dir)
			if parent == dir {
				return fmt.Errorf("run kitshop inside the kitshop repository (or give -root)")
			}
			dir = parent
		}
		o.Root = dir
	}
	if o.State == "" {
		o.State = filepath.Join(o.Root, ".kitshop")
	}
	if o.AdminPassword == "" {
		o.AdminPassword = os.Getenv("KITSHOP_ADMIN_PASSWORD")
	}
	if o.Instances < 1 {
		return fmt.Errorf("-instances must be at least 1")
	}
	if o.TLS != "on" && o.TLS != "off" {
		return fmt.Errorf("-tls must be on or off")
	}
	if (o.TLSCert == "") != (o.TLSKey == "") {
		return fmt.Errorf("-tls-cert and -tls-key go together")
	}
	return nil
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func transport(s *stack.Stack) string {
	if s.GatewayHTTPS == "" {
		return "plain HTTP everywhere (-tls off)"
	}
	t := "mTLS between services (Consul Connect CA, intentions: docs/security.md)\n" +
		"    HTTPS       " + s.GatewayHTTPS + "/   (same port; plain HTTP stays for local curl)"
	if s.CACert != "" {
		t += "\n    trust       " + s.CACert + "   (curl --cacert " + s.CACert + " " + s.GatewayHTTPS + "/v1/products)"
	}
	return t
}

// internalCalls says how the services call each other: the KITSHOP_INTERNAL_TRANSPORT
// the stack was started with.
func internalCalls(s *stack.Stack) string {
	if s.Environ["KITSHOP_INTERNAL_TRANSPORT"] == "grpc" {
		return "gRPC between services (KITSHOP_INTERNAL_TRANSPORT=grpc); the public API stays HTTP JSON"
	}
	return "HTTP JSON between services (KITSHOP_INTERNAL_TRANSPORT=grpc: gRPC)"
}

func printURLs(s *stack.Stack) {
	storage := "in-memory stores (nothing is kept)"
	if s.Postgres != "" {
		storage = "PostgreSQL, databases " + s.Options.DBPrefix + "_<service>"
	}
	events := "off (RabbitMQ unreachable)"
	if s.AMQP != "" {
		events = "RabbitMQ exchange kitshop.events"
	}
	fmt.Printf(`
  kitshop is up
    storefront  %[1]s/
    API         %[1]s/v1/products   (OpenAPI: %[1]s/openapi.json, Swagger UI: %[1]s/docs)
    Consul UI   http://%[2]s/ui/dc1/services
    storage     %[3]s
    events      %[4]s
    admin       %[5]s / %[6]s
    demo user   %[7]s / %[8]s
    logs        %[9]s
    transport   %[10]s
    calls       %[11]s

`, s.GatewayURL, s.Options.ConsulAddr, storage, events, s.AdminEmail, s.AdminPassword, stack.DemoEmail, stack.DemoPassword, s.Logs(), transport(s), internalCalls(s))
}

func isTerminal(f *os.File) bool {
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}
