// Package consulacl prepares a Consul agent that runs with ACLs on and a default policy
// of deny for a kitshop deployment: it bootstraps the ACL system, lets the anonymous
// token read services, nodes and health and nothing else (the UI and Prometheus's
// discovery work without a login; nothing can be registered or changed without a
// token), gives the agent a token for its own node, and each service a token that may
// register that service, fetch its Connect certificate, read its intentions and read
// the catalogue.
//
// Every step may run again: tokens are kept in files and reused while Consul still
// knows them, and policies are written over with the same rules. Where the files are
// given instead (a Kubernetes Secret), Given makes the tokens with their secrets.
package consulacl

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	consul "github.com/hashicorp/consul/api"
)

// AnonymousID is the accessor ID of Consul's anonymous token, used by every request
// that carries none.
const AnonymousID = "00000000-0000-0000-0000-000000000002"

// Policy names.
const (
	AnonymousPolicy = "kitshop-anonymous"
	AgentPolicy     = "kitshop-agent"
)

// ServicePolicy is the name of service's policy.
func ServicePolicy(service string) string { return "kitshop-" + service }

// AnonymousRules: services, nodes and their health, but not the intentions (who may
// call whom stays for the services and operators).
const AnonymousRules = `service_prefix "" {
  policy     = "read"
  intentions = "deny"
}
node_prefix "" {
  policy = "read"
}
`

// AgentRules let the agent keep its node in the catalogue and sync the services
// registered with it.
const AgentRules = `node_prefix "" {
  policy = "write"
}
service_prefix "" {
  policy = "read"
}
`

// ServiceRules let an instance of service register itself (and deregister), fetch its
// Connect leaf certificate and ask the agent to authorise callers by the intentions
// (service:write, which includes reading its intentions), and find the instances of
// the services it calls.
func ServiceRules(service string) string {
	return fmt.Sprintf(`service %q {
  policy = "write"
}
service_prefix "" {
  policy = "read"
}
node_prefix "" {
  policy = "read"
}
`, service)
}

// Admin acts on Consul's ACLs with the management token.
type Admin struct {
	c     *consul.Client
	token string
	// given: the token files are the source of the secrets and are never written.
	given bool
}

// ErrBootstrappedElsewhere means the ACL system was bootstrapped with a token other
// than the one kept in the file given to Bootstrap.
var ErrBootstrappedElsewhere = errors.New("consul's ACL system was bootstrapped with another management token")

// retryEvery is the pause between two tries while the agent is not ready.
const retryEvery = time.Second

// Bootstrap returns an Admin with the management token kept in file, bootstrapping the
// ACL system (and writing the token Consul made to file) when the file does not exist
// yet or Consul no longer knows its token (Consul's data was wiped). It waits, until
// ctx is done, for an agent that is starting or has no leader yet.
func Bootstrap(ctx context.Context, c *consul.Client, file string) (*Admin, error) {
	secret, err := readToken(file)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	for {
		if secret != "" {
			_, _, err = c.ACL().TokenReadSelf((&consul.QueryOptions{Token: secret}).WithContext(ctx))
			if err == nil {
				return &Admin{c: c, token: secret}, nil
			}
		}
		if secret == "" || unknownToken(err) {
			var tok *consul.ACLToken
			// Consul 1.14 makes the token itself (it ignores a secret offered with the
			// request), so it is written to file only after Consul answered.
			if tok, _, err = c.ACL().Bootstrap(); err == nil {
				if err := writeToken(file, tok.SecretID); err != nil {
					return nil, fmt.Errorf("consul's management token is lost, as %w; start Consul with empty data", err)
				}
				return &Admin{c: c, token: tok.SecretID}, nil
			}
			if strings.Contains(err.Error(), "no longer allowed") {
				return nil, fmt.Errorf("%w (its token is not in %s); start Consul with empty data, or reset its bootstrap (consul acl bootstrap)", ErrBootstrappedElsewhere, file)
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("consul ACL bootstrap: %w (last error: %v)", ctx.Err(), err)
		case <-time.After(retryEvery):
		}
	}
}

// Given returns an Admin for token files that are given, not kept (say, a Kubernetes
// Secret mounted read-only): the management token in file is the one Consul was
// configured with (acl.tokens.initial_management), and a token the Admin is asked for
// is created with the secret in its file when Consul does not know it. It waits, until
// ctx is done, for Consul to know the management token: the leader creates it once
// elected. Revoking a given token means a new secret in its file and a new run.
func Given(ctx context.Context, c *consul.Client, file string) (*Admin, error) {
	secret, err := readToken(file)
	if err != nil {
		return nil, err
	}
	for {
		var tok *consul.ACLToken
		tok, _, err = c.ACL().TokenReadSelf((&consul.QueryOptions{Token: secret}).WithContext(ctx))
		if err == nil {
			if !hasPolicyID(tok, managementPolicyID) {
				return nil, fmt.Errorf("consul: the token in %s is not a management token", file)
			}
			return &Admin{c: c, token: secret, given: true}, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("consul does not know the management token in %s (is it acl.tokens.initial_management?): %w (last error: %v)", file, ctx.Err(), err)
		case <-time.After(retryEvery):
		}
	}
}

func (a *Admin) query(ctx context.Context) *consul.QueryOptions {
	return (&consul.QueryOptions{Token: a.token}).WithContext(ctx)
}

func (a *Admin) write(ctx context.Context) *consul.WriteOptions {
	return (&consul.WriteOptions{Token: a.token}).WithContext(ctx)
}

// Policies writes the anonymous, agent and per-service policies, and gives the
// anonymous token its policy.
func (a *Admin) Policies(ctx context.Context, services []string) error {
	if err := a.policy(ctx, AnonymousPolicy, "what a request without a token may read", AnonymousRules); err != nil {
		return err
	}
	if err := a.policy(ctx, AgentPolicy, "the Consul agent's own token", AgentRules); err != nil {
		return err
	}
	for _, s := range services {
		if err := a.policy(ctx, ServicePolicy(s), "instances of the kitshop service "+s, ServiceRules(s)); err != nil {
			return err
		}
	}
	anon, _, err := a.c.ACL().TokenRead(AnonymousID, a.query(ctx))
	if err != nil {
		return fmt.Errorf("consul: the anonymous token: %w", err)
	}
	anon.Policies = []*consul.ACLTokenPolicyLink{{Name: AnonymousPolicy}}
	if _, _, err := a.c.ACL().TokenUpdate(anon, a.write(ctx)); err != nil {
		return fmt.Errorf("consul: the anonymous token: %w", err)
	}
	return nil
}

// policy creates the named policy or writes its rules over the existing one. It is
// found in the list of policies: Consul answers a read of a missing policy by name with
// 403 "ACL not found", like a bad token.
func (a *Admin) policy(ctx context.Context, name, description, rules string) error {
	list, _, err := a.c.ACL().PolicyList(a.query(ctx))
	if err != nil {
		return fmt.Errorf("consul: policies: %w", err)
	}
	p := &consul.ACLPolicy{Name: name, Description: description, Rules: rules}
	for _, e := range list {
		if e.Name == name {
			p.ID = e.ID
		}
	}
	if p.ID == "" {
		_, _, err = a.c.ACL().PolicyCreate(p, a.write(ctx))
	} else {
		_, _, err = a.c.ACL().PolicyUpdate(p, a.write(ctx))
	}
	if err != nil {
		return fmt.Errorf("consul: policy %s: %w", name, err)
	}
	return nil
}

// TokenFor returns the secret of a token with the named policy, kept in file: the one in
// the file while Consul knows it with that policy, else a new one, written to the file
// (mode 0600) before it is created in Consul. For an Admin of Given files, the secret
// in the file is the token's: created when Consul does not know it, an error when
// Consul knows it with other policies.
func (a *Admin) TokenFor(ctx context.Context, policy, description, file string) (string, error) {
	secret, err := readToken(file)
	switch {
	case err == nil:
		tok, _, err := a.c.ACL().TokenReadSelf((&consul.QueryOptions{Token: secret}).WithContext(ctx))
		if err == nil && hasPolicy(tok, policy) {
			return secret, nil
		}
		if err != nil && !unknownToken(err) {
			return "", fmt.Errorf("consul: token in %s: %w", file, err)
		}
		if a.given && err == nil {
			return "", fmt.Errorf("consul: the token in %s is not of policy %s; give it a secret of its own", file, policy)
		}
	case a.given || !errors.Is(err, os.ErrNotExist):
		return "", err
	}
	if !a.given {
		if secret, err = newSecret(); err != nil {
			return "", err
		}
		if err := writeToken(file, secret); err != nil {
			return "", err
		}
	}
	_, _, err = a.c.ACL().TokenCreate(&consul.ACLToken{
		SecretID:    secret,
		Description: description,
		Policies:    []*consul.ACLTokenPolicyLink{{Name: policy}},
	}, a.write(ctx))
	if err != nil {
		return "", fmt.Errorf("consul: token %q: %w", description, err)
	}
	return secret, nil
}

// AgentToken gives the agent its token (kept in file). An agent started with
// enable_token_persistence keeps it across restarts.
func (a *Admin) AgentToken(ctx context.Context, file string) error {
	secret, err := a.TokenFor(ctx, AgentPolicy, "kitshop: the Consul agent", file)
	if err != nil {
		return err
	}
	if _, err := a.c.Agent().UpdateAgentACLToken(secret, a.write(ctx)); err != nil {
		return fmt.Errorf("consul: setting the agent's token: %w", err)
	}
	return nil
}

// ServiceToken makes sure file holds a token of service's policy.
func (a *Admin) ServiceToken(ctx context.Context, service, file string) error {
	_, err := a.TokenFor(ctx, ServicePolicy(service), "kitshop: instances of "+service, file)
	return err
}

// managementPolicyID is the ID of Consul's built-in global-management policy.
const managementPolicyID = "00000000-0000-0000-0000-000000000001"

func hasPolicyID(tok *consul.ACLToken, id string) bool {
	for _, p := range tok.Policies {
		if p.ID == id {
			return true
		}
	}
	return false
}

func hasPolicy(tok *consul.ACLToken, name string) bool {
	for _, p := range tok.Policies {
		if p.Name == name {
			return true
		}
	}
	return false
}

// unknownToken reports whether Consul refused a token it does not know (or one used
// before the ACL system is bootstrapped).
func unknownToken(err error) bool {
	var se consul.StatusError
	return errors.As(err, &se) && se.Code == http.StatusForbidden
}

// newSecret is a random UUID (version 4), the form Consul wants a token's SecretID in.
func newSecret() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]), nil
}

func readToken(file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	secret := strings.TrimSpace(string(b))
	if secret == "" {
		return "", fmt.Errorf("%s is empty: %w", file, os.ErrNotExist)
	}
	return secret, nil
}

// writeToken replaces file with one holding secret, readable by its owner only; the
// file appears whole (a rename), so a reader never sees half a token.
func writeToken(file, secret string) error {
	dir := filepath.Dir(file)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".token-*")
	if err != nil {
		return err
	}
	_, err = tmp.WriteString(secret + "\n")
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), file)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("writing %s: %w", file, err)
	}
	return nil
}
