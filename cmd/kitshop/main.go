// Command kitshop runs the whole shop on this machine without Docker: a Consul dev
// agent, two instances of every service on free ports, and the gateway.
//
//	kitshop up [-detach]   start the stack (Ctrl-C stops it; -detach leaves it running)
//	kitshop demo           start the stack, walk a shopping story, keep it up until Ctrl-C
//	kitshop status         services, instances and their health in Consul
//	kitshop down           stop a detached stack
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "kitshop:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprint(os.Stderr, `usage: kitshop <command> [flags]

commands:
  up       start Consul, two instances of every service and the gateway
  demo     up, then walk a shopping story through the gateway; Ctrl-C stops
  status   show every service's instances and their health in Consul
  down     stop a stack started with "up -detach"

Run "kitshop <command> -h" for the flags of a command.
`)
}

func run(args []string) error {
	if len(args) == 0 {
		usage()
		return fmt.Errorf("no command")
	}
	cmd, args := args[0], args[1:]
	fs := flag.NewFlagSet("kitshop "+cmd, flag.ExitOnError)
	var opts options
	opts.register(fs)
	detach := false
	if cmd == "up" {
		fs.BoolVar(&detach, "detach", false, "return once the stack is healthy and leave it running (stop it with kitshop down)")
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := opts.resolve(); err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch cmd {
	case "up", "demo":
		s, err := up(ctx, opts)
		if err != nil {
			return err
		}
		if cmd == "demo" {
			if err := demo(ctx, s); err != nil {
				s.logf("the demo story stopped: %v", err)
			}
		}
		if detach {
			s.logf("detached: stop the stack with `go run ./cmd/kitshop down`")
			return nil
		}
		s.logf("the stack is up; press Ctrl-C to stop it")
		<-ctx.Done()
		fmt.Println()
		return s.down()
	case "status":
		return status(ctx, opts)
	case "down":
		s, err := loadStack(opts)
		if err != nil {
			return err
		}
		return s.down()
	}
	usage()
	return fmt.Errorf("unknown command %q", cmd)
}

// options are the flags every command shares.
type options struct {
	root        string // the repository
	state       string // state folder: binaries, logs, pids, keys
	gatewayAddr string
	consulAddr  string
	postgres    string // server URL; a database per service is created on it
	amqp        string
	zipkin      string
	instances   int
	timeout     time.Duration
}

func (o *options) register(fs *flag.FlagSet) {
	fs.StringVar(&o.root, "root", "", "the kitshop repository (default: found from the working directory)")
	fs.StringVar(&o.state, "state", "", "state folder for binaries, logs and pids (default <root>/.kitshop)")
	fs.StringVar(&o.gatewayAddr, "gateway-addr", envOr("KITSHOP_GATEWAY_ADDR", "127.0.0.1:8080"), "where the gateway listens")
	fs.StringVar(&o.consulAddr, "consul-addr", envOr("KITSHOP_CONSUL_ADDR", "127.0.0.1:8500"), "the Consul agent; a dev agent is started there if none answers")
	fs.StringVar(&o.postgres, "postgres", envOr("KITSHOP_POSTGRES", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable&connect_timeout=5"), "PostgreSQL server; each service gets its own database on it (memory stores when unreachable)")
	fs.StringVar(&o.amqp, "amqp", envOr("KITSHOP_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"), "RabbitMQ (no emails when unreachable)")
	fs.StringVar(&o.zipkin, "zipkin", envOr("KITSHOP_ZIPKIN_URL", ""), "Zipkin span collector URL, if you run one")
	fs.IntVar(&o.instances, "instances", 2, "instances of every service")
	fs.DurationVar(&o.timeout, "timeout", 90*time.Second, "how long to wait for the stack to become healthy")
}

func (o *options) resolve() error {
	if o.root == "" {
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
		o.root = dir
	}
	if o.state == "" {
		o.state = filepath.Join(o.root, ".kitshop")
	}
	if o.instances < 1 {
		return fmt.Errorf("-instances must be at least 1")
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
