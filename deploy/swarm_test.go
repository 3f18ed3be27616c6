package deploy_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// swarmService is the part of a service in deploy/swarm/kitshop.yml the checks read.
type swarmService struct {
	Image       string            `json:"image"`
	Environment map[string]string `json:"environment"`
	Deploy      struct {
		Replicas     any    `json:"replicas"`
		EndpointMode string `json:"endpoint_mode"`
	} `json:"deploy"`
	Ports   []map[string]any `json:"ports"`
	Volumes []any            `json:"volumes"`
	Configs []struct {
		Source string `json:"source"`
	} `json:"configs"`
}

// defaultVar is ${NAME:-default}, which compose resolves to its default in an empty
// environment.
var defaultVar = regexp.MustCompile(`\$\{[A-Z0-9_]+:-([^}]*)\}`)

// requiredVar is ${KITSHOP_ADMIN_PASSWORD:?message}, the one value the user must give;
// the checks give it testAdminPassword.
var requiredVar = regexp.MustCompile(`\$\{KITSHOP_ADMIN_PASSWORD:\?[^}]*\}`)

// TestSwarm: the stack file runs the services of docker-compose.yml, with the same
// images and settings, the way a swarm without IPVS can: every service in dnsrr mode,
// the gateway published in host mode and nothing else published, 2 replicas of each
// service. make swarm-test deploys it.
func TestSwarm(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(root(t), "deploy", "swarm", "kitshop.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var docs []struct {
		Version  string                  `json:"version"`
		Services map[string]swarmService `json:"services"`
		Configs  map[string]struct {
			File string `json:"file"`
		} `json:"configs"`
		Volumes map[string]any `json:"volumes"`
	}
	yamlToJSON(t, raw, &docs)
	if len(docs) != 1 {
		t.Fatalf("%d documents, want 1", len(docs))
	}
	stack := docs[0]
	if stack.Version != "3.8" {
		t.Errorf("version %q: docker stack deploy wants a version 3 file", stack.Version)
	}
	compose := composeConfig(t, []string{"KITSHOP_ADMIN_PASSWORD=" + testAdminPassword}, "docker-compose.yml")

	for name, s := range stack.Services {
		if s.Deploy.EndpointMode != "dnsrr" {
			t.Errorf("%s: endpoint_mode %q, want dnsrr (no VIP: it needs IPVS)", name, s.Deploy.EndpointMode)
		}
		c, ok := compose[name]
		if !ok {
			t.Errorf("%s is not a service of docker-compose.yml", name)
			continue
		}
		if got := defaultVar.ReplaceAllString(s.Image, "$1"); got != c.Image {
			t.Errorf("%s: image %q, docker-compose.yml runs %q", name, got, c.Image)
		}
		for k, v := range s.Environment {
			if k == "CONSUL_BIND_INTERFACE" { // a swarm task has two networks
				continue
			}
			got := defaultVar.ReplaceAllString(v, "$1")
			if requiredVar.MatchString(got) { // compose was given a value for it
				got = requiredVar.ReplaceAllString(got, testAdminPassword)
			}
			if got != c.Environment[k] {
				t.Errorf("%s: %s=%q, docker-compose.yml has %q", name, k, got, c.Environment[k])
			}
		}
		for k := range c.Environment {
			if _, ok := s.Environment[k]; !ok {
				t.Errorf("%s: no %s, which docker-compose.yml sets", name, k)
			}
		}
		if name == "gateway" {
			if len(s.Ports) != 1 || s.Ports[0]["mode"] != "host" || s.Ports[0]["target"] != float64(8080) {
				t.Errorf("gateway ports %v, want 8080 published in host mode (the routing mesh needs IPVS)", s.Ports)
			}
		} else if len(s.Ports) > 0 {
			t.Errorf("%s publishes %v: a swarm cannot publish on 127.0.0.1 only, so only the gateway is published", name, s.Ports)
		}
		for _, cfg := range s.Configs {
			if _, ok := stack.Configs[cfg.Source]; !ok {
				t.Errorf("%s: config %s is not declared", name, cfg.Source)
			}
		}
	}
	// A service under a compose profile (the central log store of "logs") is an
	// option of the compose demo: docker stack deploy knows no profiles.
	for name, c := range compose {
		if len(c.Profiles) > 0 {
			continue
		}
		if _, ok := stack.Services[name]; !ok {
			t.Errorf("%s of docker-compose.yml is not in the swarm stack", name)
		}
	}
	for svc := range services {
		want := "2"
		if svc == "gateway" {
			want = "1" // holds the node's published port
		}
		if got := fmt.Sprint(stack.Services[svc].Deploy.Replicas); got != want {
			t.Errorf("%s: %s replicas, want %s", svc, got, want)
		}
		if !slices.ContainsFunc(stack.Services[svc].Volumes, func(v any) bool {
			return volumeSource(v) == "consul-token-"+svc && volumeReadOnly(v)
		}) {
			t.Errorf("%s does not mount its Consul token read-only", svc)
		}
	}
	for name, cfg := range stack.Configs {
		if _, err := os.Stat(filepath.Join(root(t), "deploy", "swarm", cfg.File)); err != nil {
			t.Errorf("config %s: %v", name, err)
		}
	}
	var composeVolumes []string
	for _, s := range compose {
		if len(s.Profiles) > 0 {
			continue
		}
		for _, v := range s.Volumes {
			if src := volumeSource(v); src != "" && !strings.HasPrefix(src, "/") {
				composeVolumes = append(composeVolumes, src)
			}
		}
	}
	for _, v := range composeVolumes {
		if _, ok := stack.Volumes[v]; !ok {
			t.Errorf("volume %s of docker-compose.yml is not in the swarm stack", v)
		}
	}
}
