package stack

import (
	"fmt"
	"path/filepath"
	"strings"
)

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

func lookup(name string) (service, error) {
	for _, svc := range services {
		if svc.name == name {
			return svc, nil
		}
	}
	return service{}, fmt.Errorf("no service %q (one of %s)", name, strings.Join(serviceNames(), ", "))
}

func (s *Stack) instances(svc service) int {
	if svc.name == "gateway" {
		return 1
	}
	return s.Options.Instances
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
		// The address it answers on, once known: a replacement takes over that port.
		env["KITSHOP_HTTP_ADDR"] = strings.TrimPrefix(s.GatewayURL, "http://")
		env["KITSHOP_REUSE_PORT"] = "true"
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

// start launches instance i of svc. A service's instance carries its name as a Consul
// tag, so that it can be told apart from the others (waitInstance, the Consul UI).
func (s *Stack) start(svc service, i int) (Proc, error) {
	name := fmt.Sprintf("%s-%d", svc.name, i)
	if svc.name == "gateway" {
		name = "gateway"
	}
	env := s.env(svc)
	if _, given := env["KITSHOP_TAGS"]; !given && svc.name != "gateway" {
		env["KITSHOP_TAGS"] = name
	}
	p, err := s.spawn(Proc{Name: name, Service: svc.name}, filepath.Join(s.bin(), filepath.Base(svc.pkg)), nil, env)
	if err != nil {
		return Proc{}, err
	}
	s.Procs = append(s.Procs, p)
	return p, s.save()
}

// StartInstance adds one more instance of service to the running stack.
func (s *Stack) StartInstance(service string) (Proc, error) {
	svc, err := lookup(service)
	if err != nil || svc.name == "gateway" {
		return Proc{}, fmt.Errorf("no service %q to add an instance of", service)
	}
	return s.start(svc, s.nextIndex(service))
}
