package deploy_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// composeService is the part of a service in `docker-compose config` the checks read.
type composeService struct {
	Image string `json:"image"`
	Build *struct {
		Context string            `json:"context"`
		Args    map[string]string `json:"args"`
	} `json:"build"`
	Hostname    string            `json:"hostname"`
	Environment map[string]string `json:"environment"`
	Healthcheck *struct {
		Test []string `json:"test"`
	} `json:"healthcheck"`
	DependsOn map[string]struct {
		Condition string `json:"condition"`
	} `json:"depends_on"`
	ReadOnly bool     `json:"read_only"`
	CapDrop  []string `json:"cap_drop"`
	Ports    []any    `json:"ports"`
	Volumes  []any    `json:"volumes"`
}

// composeConfig runs `docker-compose config` (which refuses an invalid file) and
// returns the services as compose resolved them.
func composeConfig(t *testing.T) map[string]composeService {
	t.Helper()
	compose := tool(t, "docker-compose", "docker-compose")
	dir := root(t)
	run(t, dir, nil, nil, compose, "-f", "docker-compose.yml", "config", "--quiet")
	out := run(t, dir, nil, nil, compose, "-f", "docker-compose.yml", "config")
	var docs []struct {
		Services map[string]composeService `json:"services"`
	}
	yamlToJSON(t, out, &docs)
	if len(docs) != 1 || len(docs[0].Services) == 0 {
		t.Fatalf("docker-compose config printed %d documents, want one with services", len(docs))
	}
	return docs[0].Services
}

func TestCompose(t *testing.T) {
	svcs := composeConfig(t)

	infra := map[string]string{ // service → image repository
		"consul": "hashicorp/consul", "zipkin": "openzipkin/zipkin", "postgres": "postgres",
		"rabbitmq": "rabbitmq", "prometheus": "prom/prometheus", "grafana": "grafana/grafana",
	}
	for name, repo := range infra {
		s, ok := svcs[name]
		if !ok {
			t.Errorf("no %s service", name)
			continue
		}
		if !strings.HasPrefix(s.Image, repo+":") {
			t.Errorf("%s: image %q, want %s:<pinned tag>", name, s.Image, repo)
		}
		if name != "zipkin" && s.Healthcheck == nil {
			t.Errorf("%s: no health check; services waiting on it could not use service_healthy", name)
		}
	}

	var names []string
	for name := range svcs {
		names = append(names, name)
	}
	slices.Sort(names)
	pinned := regexp.MustCompile(`^[a-z0-9./-]+:v?[0-9][A-Za-z0-9._-]*$`)
	for _, name := range names {
		s := svcs[name]
		if !pinned.MatchString(s.Image) {
			t.Errorf("%s: image %q is not pinned to a version tag", name, s.Image)
		}
		for dep, d := range s.DependsOn {
			want := "service_healthy"
			if dep == "zipkin" { // spans are dropped while it starts; nothing waits for it
				want = "service_started"
			}
			if d.Condition != want {
				t.Errorf("%s: depends on %s with condition %q, want %s", name, dep, d.Condition, want)
			}
			if _, ok := svcs[dep]; !ok {
				t.Errorf("%s: depends on %s, which does not exist", name, dep)
			}
		}
		for _, v := range s.Volumes {
			// Bind mounts of the repository's files must point at files that exist.
			src := volumeSource(v)
			if strings.HasPrefix(src, "/") {
				if _, err := os.Stat(src); err != nil {
					t.Errorf("%s: mounts %s: %v", name, src, err)
				}
			}
		}
	}

	for svc, port := range services {
		replicas := []string{svc + "-1", svc + "-2"}
		if svc == "gateway" {
			replicas = []string{"gateway"}
		}
		for _, name := range replicas {
			t.Run(name, func(t *testing.T) {
				s, ok := svcs[name]
				if !ok {
					t.Fatalf("no compose service %s", name)
				}
				checkKitshopService(t, s, name, svc, port)
			})
		}
	}
	if g := svcs["gateway"]; !slices.ContainsFunc(g.Ports, func(p any) bool { return strings.Contains(fmt.Sprint(p), "8080") }) {
		t.Errorf("gateway publishes %v, want 8080", g.Ports)
	}
	for svc := range services {
		if svc == "gateway" {
			continue
		}
		for _, r := range []string{svc + "-1", svc + "-2"} {
			if _, ok := svcs["gateway"].DependsOn[r]; !ok {
				t.Errorf("the gateway does not wait for %s", r)
			}
		}
	}
}

func checkKitshopService(t *testing.T, s composeService, name, svc string, port int) {
	t.Helper()
	if s.Build == nil || s.Build.Args["SERVICE"] != svc || s.Build.Args["PORT"] != strconv.Itoa(port) {
		t.Errorf("build %+v, want the repository's Dockerfile with SERVICE=%s PORT=%d", s.Build, svc, port)
	} else if filepath.Clean(s.Build.Context) != root(t) {
		t.Errorf("build context %s, want the repository", s.Build.Context)
	}
	if !strings.HasPrefix(s.Image, "kitshop/"+svc+":") {
		t.Errorf("image %q, want kitshop/%s:<version>", s.Image, svc)
	}
	// Consul checks and other services reach the instance by the address it registers.
	if s.Hostname != name || s.Environment["KITSHOP_ADVERTISE_HOST"] != name {
		t.Errorf("hostname %q, KITSHOP_ADVERTISE_HOST %q, want both %q", s.Hostname, s.Environment["KITSHOP_ADVERTISE_HOST"], name)
	}
	if got, want := s.Environment["KITSHOP_HTTP_ADDR"], ":"+strconv.Itoa(port); got != want {
		t.Errorf("KITSHOP_HTTP_ADDR %q, want %q", got, want)
	}
	if s.Environment["KITSHOP_CONSUL_ADDR"] != "consul:8500" {
		t.Errorf("KITSHOP_CONSUL_ADDR %q, want consul:8500", s.Environment["KITSHOP_CONSUL_ADDR"])
	}
	if s.DependsOn["consul"].Condition != "service_healthy" {
		t.Error("does not wait for a healthy Consul, where it registers at start")
	}
	if svc != "gateway" {
		db := s.Environment["KITSHOP_DATABASE_URL"]
		if !strings.Contains(db, "@postgres:5432/kitshop_"+svc+"?") || !strings.Contains(db, "sslmode=disable") {
			t.Errorf("KITSHOP_DATABASE_URL %q, want postgres:5432/kitshop_%s with sslmode=disable", db, svc)
		}
		if s.DependsOn["postgres"].Condition != "service_healthy" {
			t.Error("does not wait for a healthy PostgreSQL")
		}
	}
	if svc == "order" || svc == "notification" {
		if !strings.HasPrefix(s.Environment["KITSHOP_AMQP_URL"], "amqp://") || s.DependsOn["rabbitmq"].Condition != "service_healthy" {
			t.Errorf("KITSHOP_AMQP_URL %q / rabbitmq dependency %q: events need RabbitMQ", s.Environment["KITSHOP_AMQP_URL"], s.DependsOn["rabbitmq"].Condition)
		}
	}
	if svc == "user" {
		key := s.Environment["KITSHOP_KEY_FILE"]
		if !slices.ContainsFunc(s.Volumes, func(v any) bool {
			return strings.HasPrefix(key, volumeTarget(v)+"/") && !strings.HasPrefix(volumeSource(v), "/")
		}) {
			t.Errorf("KITSHOP_KEY_FILE %q is not on a named volume: the user replicas must share the keyring", key)
		}
	}
	if s.Healthcheck == nil || !slices.Contains(s.Healthcheck.Test, "/usr/local/bin/healthcheck") {
		t.Errorf("health check %+v, want the image's /usr/local/bin/healthcheck", s.Healthcheck)
	}
	if !s.ReadOnly || !slices.Contains(s.CapDrop, "ALL") {
		t.Errorf("read_only %v, cap_drop %v: want a read-only root filesystem and no capabilities", s.ReadOnly, s.CapDrop)
	}
}

// volumeSource and volumeTarget read a volume in either of compose's forms: the
// string "source:target[:mode]" or the long form's object.
func volumeSource(v any) string {
	switch v := v.(type) {
	case string:
		return strings.Split(v, ":")[0]
	case map[string]any:
		s, _ := v["source"].(string)
		return s
	}
	return ""
}

func volumeTarget(v any) string {
	switch v := v.(type) {
	case string:
		if parts := strings.Split(v, ":"); len(parts) > 1 {
			return parts[1]
		}
	case map[string]any:
		s, _ := v["target"].(string)
		return s
	}
	return ""
}
