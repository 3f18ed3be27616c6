package deploy_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
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
	Command     []string          `json:"command"`
	Hostname    string            `json:"hostname"`
	Environment map[string]string `json:"environment"`
	Healthcheck *struct {
		Test    []string `json:"test"`
		Disable bool     `json:"disable"`
	} `json:"healthcheck"`
	DependsOn map[string]struct {
		Condition string `json:"condition"`
	} `json:"depends_on"`
	Deploy *struct {
		Replicas *int `json:"replicas"`
	} `json:"deploy"`
	Restart  string   `json:"restart"`
	ReadOnly bool     `json:"read_only"`
	CapDrop  []string `json:"cap_drop"`
	Ports    []any    `json:"ports"`
	Volumes  []any    `json:"volumes"`
	Profiles []string `json:"profiles"`
	Logging  *struct {
		Driver  string            `json:"driver"`
		Options map[string]string `json:"options"`
	} `json:"logging"`
}

// testAdminPassword stands for the admin password a user gives (.env or environment).
const testAdminPassword = "a-password-of-the-users-own"

// composeConfig runs `docker-compose config` (which refuses an invalid file) on the
// files given, with env, and returns the services as compose resolved them.
func composeConfig(t *testing.T, env []string, files ...string) map[string]composeService {
	t.Helper()
	compose := tool(t, "docker-compose", "docker-compose")
	dir := root(t)
	var args []string
	for _, f := range files {
		args = append(args, "-f", f)
	}
	// No .env of the developer's: the file's own defaults are what is checked.
	empty := filepath.Join(t.TempDir(), "empty.env")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	env = append(env, "COMPOSE_PROJECT_NAME=kitshop-check")
	args = append(args, "--env-file", empty)
	run(t, dir, nil, env, compose, append(args, "config", "--quiet")...)
	out := run(t, dir, nil, env, compose, append(args, "config")...)
	var docs []struct {
		Services map[string]composeService `json:"services"`
	}
	yamlToJSON(t, out, &docs)
	if len(docs) != 1 || len(docs[0].Services) == 0 {
		t.Fatalf("docker-compose config printed %d documents, want one with services", len(docs))
	}
	return docs[0].Services
}

// officialImages are the images docker-compose.yml pulls by default, by service.
var officialImages = map[string]string{
	"consul":     "hashicorp/consul",
	"zipkin":     "openzipkin/zipkin",
	"postgres":   "postgres",
	"rabbitmq":   "rabbitmq",
	"prometheus": "prom/prometheus",
	"grafana":    "grafana/grafana",
}

// oneShots are the steps that run once and exit.
var oneShots = map[string]string{"bootstrap": "bootstrap", "seed": "seed"}

func TestCompose(t *testing.T) {
	svcs := composeConfig(t, []string{"KITSHOP_ADMIN_PASSWORD=" + testAdminPassword}, "docker-compose.yml")

	for name, repo := range officialImages {
		s, ok := svcs[name]
		if !ok {
			t.Errorf("no %s service", name)
			continue
		}
		if !strings.HasPrefix(s.Image, repo+":") {
			t.Errorf("%s: image %q by default, want %s:<pinned tag>", name, s.Image, repo)
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
			switch {
			case dep == "zipkin": // spans are dropped while it starts; nothing waits for it
				want = "service_started"
			case oneShots[dep] != "":
				want = "service_completed_successfully"
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
		// Only the gateway is reachable from other machines.
		for _, p := range s.Ports {
			hostIP, _ := portHost(p)
			if name == "gateway" && hostIP != "" {
				t.Errorf("gateway is published on %s only, want every interface", hostIP)
			}
			if name != "gateway" && hostIP != "127.0.0.1" {
				t.Errorf("%s is published as %v, want on 127.0.0.1 only", name, p)
			}
		}
	}

	for svc, port := range services {
		t.Run(svc, func(t *testing.T) {
			s, ok := svcs[svc]
			if !ok {
				t.Fatalf("no compose service %s", svc)
			}
			checkKitshopService(t, s, svc, port)
		})
	}
	for svc := range services {
		if svc != "gateway" && svcs["gateway"].DependsOn[svc].Condition != "service_healthy" {
			t.Errorf("the gateway does not wait for a healthy %s", svc)
		}
	}
	if _, published := portHost(firstOr(svcs["gateway"].Ports)); published != "8080" {
		t.Errorf("gateway publishes %v, want 8080 by default", svcs["gateway"].Ports)
	}

	for name, cmd := range oneShots {
		s := svcs[name]
		if !strings.HasPrefix(s.Image, "kitshop/kitshop:") || s.Build == nil || s.Build.Args["SERVICE"] != "kitshop" {
			t.Errorf("%s: image %q, build %+v, want kitshop/kitshop built with SERVICE=kitshop", name, s.Image, s.Build)
		}
		if !slices.Equal(s.Command, []string{cmd}) || s.Restart != "no" {
			t.Errorf("%s: command %v, restart %q, want [%s] run once", name, s.Command, s.Restart, cmd)
		}
	}
	if svcs["seed"].DependsOn["gateway"].Condition != "service_healthy" {
		t.Error("seed does not wait for a healthy gateway")
	}
	if svcs["bootstrap"].DependsOn["consul"].Condition != "service_healthy" {
		t.Error("bootstrap does not wait for a healthy Consul")
	}
	if svcs["seed"].Environment["KITSHOP_ADMIN_PASSWORD"] != svcs["user"].Environment["KITSHOP_ADMIN_PASSWORD"] {
		t.Error("seed and the user service are given different admin passwords")
	}
	for svc := range services {
		// The bootstrap step writes each service's token on the volume the service reads.
		vol := "consul-token-" + svc
		if !slices.ContainsFunc(svcs["bootstrap"].Volumes, func(v any) bool {
			return volumeSource(v) == vol && volumeTarget(v) == "/var/lib/kitshop/tokens/"+svc
		}) {
			t.Errorf("bootstrap does not mount %s on /var/lib/kitshop/tokens/%s", vol, svc)
		}
	}
}

// checkKitshopService checks one of kitshop's services as compose resolved it.
func checkKitshopService(t *testing.T, s composeService, svc string, port int) {
	t.Helper()
	if s.Build == nil || s.Build.Args["SERVICE"] != svc || s.Build.Args["PORT"] != strconv.Itoa(port) {
		t.Errorf("build %+v, want the repository's Dockerfile with SERVICE=%s PORT=%d", s.Build, svc, port)
	} else if filepath.Clean(s.Build.Context) != root(t) {
		t.Errorf("build context %s, want the repository", s.Build.Context)
	}
	if !strings.HasPrefix(s.Image, "kitshop/"+svc+":") {
		t.Errorf("image %q, want kitshop/%s:<version>", s.Image, svc)
	}
	replicas := 2
	if svc == "gateway" {
		replicas = 1 // published on a fixed port
	}
	if s.Deploy == nil || s.Deploy.Replicas == nil || *s.Deploy.Replicas != replicas {
		t.Errorf("deploy %+v, want %d replicas", s.Deploy, replicas)
	}
	// Every replica registers its own container address, so none may have a fixed name.
	if s.Hostname != "" || s.Environment["KITSHOP_ADVERTISE_HOST"] != "auto" {
		t.Errorf("hostname %q, KITSHOP_ADVERTISE_HOST %q, want no hostname and auto", s.Hostname, s.Environment["KITSHOP_ADVERTISE_HOST"])
	}
	if got, want := s.Environment["KITSHOP_HTTP_ADDR"], ":"+strconv.Itoa(port); got != want {
		t.Errorf("KITSHOP_HTTP_ADDR %q, want %q", got, want)
	}
	if s.Environment["KITSHOP_CONSUL_ADDR"] != "consul:8500" {
		t.Errorf("KITSHOP_CONSUL_ADDR %q, want consul:8500", s.Environment["KITSHOP_CONSUL_ADDR"])
	}
	if s.Environment["KITSHOP_TLS"] == "off" {
		t.Error("KITSHOP_TLS=off: calls between services must be mTLS")
	}
	tokenDir := "/var/lib/kitshop/tokens/" + svc
	if s.Environment["KITSHOP_CONSUL_TOKEN_FILE"] != tokenDir+"/token" {
		t.Errorf("KITSHOP_CONSUL_TOKEN_FILE %q, want %s/token", s.Environment["KITSHOP_CONSUL_TOKEN_FILE"], tokenDir)
	}
	if !slices.ContainsFunc(s.Volumes, func(v any) bool {
		return volumeSource(v) == "consul-token-"+svc && volumeTarget(v) == tokenDir && volumeReadOnly(v)
	}) {
		t.Errorf("volumes %v: want consul-token-%s read-only on %s, its token only", s.Volumes, svc, tokenDir)
	}
	if s.DependsOn["consul"].Condition != "service_healthy" {
		t.Error("does not wait for a healthy Consul, where it registers at start")
	}
	if s.DependsOn["bootstrap"].Condition != "service_completed_successfully" {
		t.Error("does not wait for the bootstrap step, which makes its Consul token")
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
	if svc == "gateway" {
		cert := s.Environment["KITSHOP_TLS_CERT"]
		if cert == "" || !slices.ContainsFunc(s.Volumes, func(v any) bool {
			return volumeSource(v) == "gateway-tls" && strings.HasPrefix(cert, volumeTarget(v)+"/")
		}) {
			t.Errorf("KITSHOP_TLS_CERT %q is not on the volume gateway-tls: the gateway must serve HTTPS", cert)
		}
	}
	if s.Healthcheck == nil || !slices.Contains(s.Healthcheck.Test, "/usr/local/bin/healthcheck") {
		t.Errorf("health check %+v, want the image's /usr/local/bin/healthcheck", s.Healthcheck)
	}
	if !s.ReadOnly || !slices.Contains(s.CapDrop, "ALL") {
		t.Errorf("read_only %v, cap_drop %v: want a read-only root filesystem and no capabilities", s.ReadOnly, s.CapDrop)
	}
}

// TestComposeVariables: every published port and every third-party image comes from a
// variable whose default is the usual port and the official image, and the stand-ins
// that deploy/standin builds, selected through those variables, carry kitshop's names.
func TestComposeVariables(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(root(t), "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	for name, official := range officialImages {
		re := regexp.MustCompile(`image: \$\{KITSHOP_[A-Z]+_IMAGE:-` + regexp.QuoteMeta(official) + `:[^}]+\}`)
		if !re.MatchString(text) {
			t.Errorf("%s: the image is not ${KITSHOP_<NAME>_IMAGE:-%s:<tag>}", name, official)
		}
	}
	ports := map[string]string{"GATEWAY": "8080", "CONSUL": "8500", "ZIPKIN": "9411", "RABBITMQ_UI": "15672", "PROMETHEUS": "9090", "GRAFANA": "3000",
		"LOGS": "9428", "SYSLOG": "5514"}
	for name, port := range ports {
		if !strings.Contains(text, "${KITSHOP_"+name+"_PORT:-"+port+"}:") {
			t.Errorf("no published port ${KITSHOP_%s_PORT:-%s}", name, port)
		}
	}
	if n := strings.Count(text, "_PORT:-"); n != len(ports) {
		t.Errorf("%d published ports from variables, want %d (update this test)", n, len(ports))
	}

	standins := readEnvFile(t, filepath.Join(root(t), "deploy", "standin", "images.env"))
	var env []string
	for k, v := range standins {
		if !strings.HasPrefix(v, "kitshop-standin/") {
			t.Errorf("%s=%s: a stand-in must carry kitshop's name, never an official one", k, v)
		}
		env = append(env, k+"="+v)
	}
	env = append(env, "KITSHOP_ADMIN_PASSWORD="+testAdminPassword)
	svcs := composeConfig(t, env, "docker-compose.yml", "deploy/standin/compose.yml")
	for name := range officialImages {
		if name == "grafana" { // not built here: compose-up leaves it out
			continue
		}
		if !strings.HasPrefix(svcs[name].Image, "kitshop-standin/") {
			t.Errorf("with deploy/standin/images.env, %s runs %q, want a kitshop-standin image", name, svcs[name].Image)
		}
	}
	if got := svcs["user"].Build.Args["RUNTIME_IMAGE"]; got != standins["KITSHOP_RUNTIME_IMAGE"] {
		t.Errorf("with the stand-ins, kitshop's runtime base is %q, want %s", got, standins["KITSHOP_RUNTIME_IMAGE"])
	}
}

// TestConsulServerConfig: the compose Consul runs with ACLs on and a default of deny.
func TestConsulServerConfig(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root(t), "deploy", "consul", "server.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	conf := strings.Join(strings.Fields(string(b)), " ")
	for _, want := range []string{`acl { enabled = true default_policy = "deny"`, `enable_token_persistence = true`, `connect { enabled = true }`, `server = true`} {
		if !strings.Contains(conf, want) {
			t.Errorf("deploy/consul/server.hcl lacks %s", want)
		}
	}
}

func readEnvFile(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	vars := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: %q is not NAME=value", path, line)
		}
		vars[k] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return vars
}

// portHost reads a published port in either of compose's forms, the string
// "[host_ip:]published:target[/proto]" or the long form's object, and returns its host
// address (empty: every interface) and published port.
func portHost(p any) (hostIP, published string) {
	switch p := p.(type) {
	case string:
		parts := strings.Split(strings.Split(p, "/")[0], ":")
		if len(parts) == 3 {
			return parts[0], parts[1]
		}
		if len(parts) == 2 {
			return "", parts[0]
		}
	case map[string]any:
		ip, _ := p["host_ip"].(string)
		return ip, fmt.Sprint(p["published"])
	}
	return "", ""
}

func firstOr(ports []any) any {
	if len(ports) == 0 {
		return nil
	}
	return ports[0]
}

// volumeSource, volumeTarget and volumeReadOnly read a volume in either of compose's
// forms: the string "source:target[:mode]" or the long form's object.
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

func volumeReadOnly(v any) bool {
	switch v := v.(type) {
	case string:
		return strings.HasSuffix(v, ":ro")
	case map[string]any:
		ro, _ := v["read_only"].(bool)
		return ro
	}
	return false
}

// TestComposeWantsAnAdminPassword: without KITSHOP_ADMIN_PASSWORD compose refuses to
// start the stack and says what to set, rather than give the admin account a
// password everybody who read the file knows.
func TestComposeWantsAnAdminPassword(t *testing.T) {
	compose := tool(t, "docker-compose", "docker-compose")
	empty := filepath.Join(t.TempDir(), "empty.env")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(compose, "-f", "docker-compose.yml", "--env-file", empty, "config", "--quiet")
	cmd.Dir = root(t)
	cmd.Env = append(os.Environ(), "COMPOSE_PROJECT_NAME=kitshop-check", "KITSHOP_ADMIN_PASSWORD=")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "set KITSHOP_ADMIN_PASSWORD") {
		t.Fatalf("docker-compose config without an admin password: err %v, output:\n%s", err, out)
	}
}
