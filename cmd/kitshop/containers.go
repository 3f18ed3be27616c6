package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	consul "github.com/hashicorp/consul/api"

	"github.com/kitshop/kitshop/internal/consulacl"
	"github.com/kitshop/kitshop/internal/stack"
	"github.com/kitshop/kitshop/pkg/config"
)

// The one-shot steps of a container deployment (docker-compose.yml, deploy/swarm):
// bootstrap runs before the services, seed once the gateway is healthy. Both may run
// again at every start and change nothing the second time.

// services whose instances get a Consul token of their own.
const tokenServices = "user,inventory,order,payment,notification,gateway"

func progress(w io.Writer, step string) func(format string, args ...any) {
	return func(format string, args ...any) {
		fmt.Fprintf(w, "[%s] %s: %s\n", time.Now().Format("15:04:05"), step, fmt.Sprintf(format, args...))
	}
}

// bootstrap prepares Consul's ACLs and the gateway's certificate. Its state folder
// holds, for the containers that mount its parts:
//
//	consul/management.token, consul/agent.token   the tokens it keeps for itself
//	tokens/<service>/token                        each service's Consul token
//	tls/gateway.pem, gateway-key.pem, ca.pem      the gateway's certificate and its CA
func bootstrap(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flagSet("kitshop bootstrap", "Prepares Consul's ACLs (a token for each service, the anonymous token limited to reading\nservices, nodes and health) and the gateway's certificate, before the services start.")
	consulAddr := fs.String("consul-addr", "127.0.0.1:8500", "the Consul agent, with ACLs on and a default policy of deny")
	state := fs.String("state-dir", "/var/lib/kitshop", "where tokens and the certificate are kept")
	services := fs.String("services", tokenServices, "comma-separated services that get a Consul token")
	tlsHosts := fs.String("tls-hosts", "localhost,127.0.0.1,::1,gateway", "comma-separated DNS names and IP addresses the gateway's certificate is for; empty: no certificate")
	given := fs.Bool("tokens-given", false, "the token files are given and never written (a Kubernetes Secret): the management token is Consul's acl.tokens.initial_management, and each token is made with its file's secret")
	timeout := fs.Duration("timeout", 2*time.Minute, "how long to wait for Consul")
	if err := config.Parse(fs, args, nil); err != nil {
		return err
	}
	logf := progress(stdout, "bootstrap")
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	conf := consul.DefaultConfig()
	conf.Address, conf.Token, conf.TokenFile = *consulAddr, "", ""
	c, err := consul.NewClient(conf)
	if err != nil {
		return err
	}
	mgmt := filepath.Join(*state, "consul", "management.token")
	var admin *consulacl.Admin
	if *given {
		admin, err = consulacl.Given(ctx, c, mgmt)
	} else {
		admin, err = consulacl.Bootstrap(ctx, c, mgmt)
	}
	if err != nil {
		return err
	}
	logf("Consul ACLs bootstrapped (management token in %s)", filepath.Join(*state, "consul"))
	names := splitList(*services)
	if err := admin.Policies(ctx, names); err != nil {
		return err
	}
	logf("policies written; a request without a token may read services, nodes and health only")
	if err := admin.AgentToken(ctx, filepath.Join(*state, "consul", "agent.token")); err != nil {
		return err
	}
	logf("the agent has its token")
	for _, s := range names {
		file := filepath.Join(*state, "tokens", s, "token")
		if err := admin.ServiceToken(ctx, s, file); err != nil {
			return err
		}
	}
	logf("a token for each of %s (in %s)", strings.Join(names, ", "), filepath.Join(*state, "tokens", "<service>", "token"))

	if hosts := splitList(*tlsHosts); len(hosts) > 0 {
		files, made, err := stack.EdgeCertificate(filepath.Join(*state, "tls"), "gateway", hosts)
		if err != nil {
			return fmt.Errorf("the gateway's certificate: %w", err)
		}
		verb := "kept"
		if made {
			verb = "made"
		}
		logf("%s the gateway's certificate for %s, signed by the demo CA %s", verb, strings.Join(hosts, ", "), files.CA)
	}
	return nil
}

// seed fills the shop through the gateway: the demo catalogue and the demo shopper.
func seed(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flagSet("kitshop seed", "Puts the demo catalogue on sale (as the admin) and creates the demo shopper, through the gateway.")
	gateway := fs.String("gateway-url", "http://127.0.0.1:8080", "the gateway")
	gatewayCA := fs.String("gateway-ca", "", "PEM file of the CA that signed the gateway's certificate, for an https:// gateway URL (empty: the system's roots)")
	email := fs.String("admin-email", "admin@kitshop.local", "the admin account (the user service creates it at start)")
	password := fs.String("admin-password", "", "its password")
	timeout := fs.Duration("timeout", 3*time.Minute, "how long to wait for the gateway and the services behind it")
	if err := config.Parse(fs, args, nil); err != nil {
		return err
	}
	if *password == "" {
		return errors.New("seed: -admin-password (KITSHOP_ADMIN_PASSWORD) is required")
	}
	hc, err := gatewayClient(*gatewayCA)
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	logf := progress(stdout, "seed")
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	for {
		created, err := stack.SeedShop(ctx, hc, *gateway, *email, *password)
		if err == nil {
			logf("catalogue: %d products (%d new); demo user %s / %s", len(stack.Catalogue()), created, stack.DemoEmail, stack.DemoPassword)
			return nil
		}
		var apiErr *stack.APIError
		if errors.As(err, &apiErr) && (apiErr.Status == http.StatusUnauthorized || apiErr.Status == http.StatusForbidden) {
			return fmt.Errorf("seed: %w (the admin is %s with KITSHOP_ADMIN_PASSWORD, as the user service was given)", err, *email)
		}
		logf("not yet: %v", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("seed: the gateway at %s did not take the catalogue within %s: %w", *gateway, *timeout, err)
		case <-time.After(2 * time.Second):
		}
	}
}

// gatewayClient is an HTTP client that trusts the CA in caFile only, or the system's
// roots when caFile is empty. The seed step sends the admin's password: from another
// container it must go over HTTPS, which the gateway requires of other hosts.
func gatewayClient(caFile string) (*http.Client, error) {
	hc := &http.Client{Timeout: 15 * time.Second}
	if caFile == "" {
		return hc, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", caFile)
	}
	hc.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}
	return hc, nil
}

func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// flagSet is a flag set whose -h says that each flag falls back to its KITSHOP_*
// environment variable (pkg/config).
func flagSet(name, about string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ExitOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: %s [flags]\n\n%s\n\nEach flag falls back to an environment variable: -admin-password to KITSHOP_ADMIN_PASSWORD, and so on.\n\n", name, about)
		fs.PrintDefaults()
	}
	return fs
}
