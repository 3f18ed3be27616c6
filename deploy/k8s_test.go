package deploy_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/kitshop/kitshop/pkg/testenv"
)

// apiResource is one kind the fake API server below knows.
type apiResource struct {
	group, version, kind, plural string
	namespaced                   bool
}

// apiResources are the kinds kitshop's manifests use. Another kind makes kubectl
// apply fail with "no matches for kind", which is the point: a manifest of a kind
// this list lacks needs a look.
var apiResources = []apiResource{
	{"", "v1", "Namespace", "namespaces", false},
	{"", "v1", "ConfigMap", "configmaps", true},
	{"", "v1", "Secret", "secrets", true},
	{"", "v1", "Service", "services", true},
	{"apps", "v1", "Deployment", "deployments", true},
	{"apps", "v1", "StatefulSet", "statefulsets", true},
	{"policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", true},
}

// fakeAPIServer answers what `kubectl apply --dry-run=client` asks a cluster: the
// discovery documents that map kinds to resources, and 404 for every object (none
// exists yet, so each would be created). It records any request that would change
// something, which a client-side dry run must never send.
type fakeAPIServer struct {
	mu     sync.Mutex
	reads  int
	writes []string
}

func (f *fakeAPIServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.reads++
	f.mu.Unlock()
	if r.Method != http.MethodGet {
		f.mu.Lock()
		f.writes = append(f.writes, r.Method+" "+r.URL.Path)
		f.mu.Unlock()
		http.Error(w, "read-only fake", http.StatusMethodNotAllowed)
		return
	}
	groups := map[string][]apiResource{} // group/version → resources
	for _, res := range apiResources {
		gv := res.version
		if res.group != "" {
			gv = res.group + "/" + res.version
		}
		groups[gv] = append(groups[gv], res)
	}
	reply := func(v any) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
	switch path := strings.TrimSuffix(r.URL.Path, "/"); {
	case path == "/version":
		reply(map[string]string{"major": "1", "minor": "32", "gitVersion": "v1.32.0", "platform": "linux/amd64"})
	case path == "/api":
		reply(map[string]any{"kind": "APIVersions", "versions": []string{"v1"},
			"serverAddressByClientCIDRs": []map[string]string{{"clientCIDR": "0.0.0.0/0", "serverAddress": r.Host}}})
	case path == "/apis":
		var list []map[string]any
		for gv := range groups {
			if group, version, ok := strings.Cut(gv, "/"); ok {
				v := map[string]string{"groupVersion": gv, "version": version}
				list = append(list, map[string]any{"name": group, "versions": []any{v}, "preferredVersion": v})
			}
		}
		reply(map[string]any{"kind": "APIGroupList", "apiVersion": "v1", "groups": list})
	case path == "/api/v1" || strings.HasPrefix(path, "/apis/") && strings.Count(path, "/") == 3:
		gv := strings.TrimPrefix(strings.TrimPrefix(path, "/apis/"), "/api/")
		res, ok := groups[gv]
		if !ok {
			http.NotFound(w, r)
			return
		}
		var list []map[string]any
		for _, res := range res {
			list = append(list, map[string]any{"name": res.plural, "singularName": strings.ToLower(res.kind),
				"namespaced": res.namespaced, "kind": res.kind,
				"verbs": []string{"create", "delete", "get", "list", "patch", "update", "watch"}})
		}
		reply(map[string]any{"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": list})
	default:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_ = json.NewEncoder(w).Encode(map[string]any{"kind": "Status", "apiVersion": "v1", "status": "Failure",
			"reason": "NotFound", "code": 404, "message": "the fake cluster is empty"})
	}
}

// kubectlFor returns kubectl and the arguments that point it at a fake API server,
// with its own cache, so it never talks to a real cluster (nor to whatever listens on
// localhost:8080, kubectl's default).
func kubectlFor(t *testing.T) (kubectl string, args []string, fake *fakeAPIServer) {
	t.Helper()
	kubectl = tool(t, "kubectl", "kubectl")
	var v struct {
		ClientVersion struct{ Major, Minor string } `json:"clientVersion"`
	}
	out := run(t, "", nil, nil, kubectl, "version", "--client", "-o", "json")
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("kubectl version: %v", err)
	}
	// kubectl before 1.21 embeds kustomize 2, which lacks labels and resource folders.
	if minor, _ := strconv.Atoi(strings.TrimRight(v.ClientVersion.Minor, "+")); v.ClientVersion.Major == "1" && minor < 21 {
		testenv.Missing(t, "kubectl ≥ 1.21", fmt.Errorf("kubectl is %s.%s", v.ClientVersion.Major, v.ClientVersion.Minor))
	}
	fake = &fakeAPIServer{}
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	config := filepath.Join(dir, "kubeconfig")
	err := os.WriteFile(config, []byte(`apiVersion: v1
kind: Config
clusters:
  - name: fake
    cluster:
      server: `+srv.URL+`
contexts:
  - name: fake
    context:
      cluster: fake
      user: fake
      namespace: default
current-context: fake
users:
  - name: fake
    user: {}
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	return kubectl, []string{"--kubeconfig", config, "--cache-dir", filepath.Join(dir, "cache")}, fake
}

// k8sObject is the part of a manifest the policy checks read.
type k8sObject struct {
	Kind     string `json:"kind"`
	Metadata struct {
		Name      string            `json:"name"`
		Namespace string            `json:"namespace"`
		Labels    map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec struct {
		Replicas *int              `json:"replicas"`
		Selector *json.RawMessage  `json:"selector"`
		Ports    []json.RawMessage `json:"ports"`
		Template struct {
			Spec podSpec `json:"spec"`
		} `json:"template"`
	} `json:"spec"`
}

type podSpec struct {
	SecurityContext struct {
		RunAsNonRoot *bool `json:"runAsNonRoot"`
		RunAsUser    *int  `json:"runAsUser"`
	} `json:"securityContext"`
	InitContainers []container `json:"initContainers"`
	Containers     []container `json:"containers"`
}

type container struct {
	Name           string `json:"name"`
	Image          string `json:"image"`
	ReadinessProbe *struct {
		HTTPGet *struct {
			Path string `json:"path"`
		} `json:"httpGet"`
	} `json:"readinessProbe"`
	LivenessProbe *json.RawMessage `json:"livenessProbe"`
	Resources     struct {
		Requests map[string]string `json:"requests"`
		Limits   map[string]string `json:"limits"`
	} `json:"resources"`
	SecurityContext struct {
		ReadOnlyRootFilesystem   *bool `json:"readOnlyRootFilesystem"`
		AllowPrivilegeEscalation *bool `json:"allowPrivilegeEscalation"`
		Capabilities             struct {
			Drop []string `json:"drop"`
		} `json:"capabilities"`
	} `json:"securityContext"`
	Env []struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	} `json:"env"`
}

func TestKubernetes(t *testing.T) {
	for _, dir := range []string{"k8s/base", "k8s/overlays/demo"} {
		t.Run(strings.ReplaceAll(dir, "/", "_"), func(t *testing.T) {
			kubectl, kargs, fake := kubectlFor(t)
			manifests := run(t, root(t), nil, nil, kubectl, append(slices.Clone(kargs), "kustomize", filepath.Join("deploy", dir))...)

			// Schema: every document decodes strictly into the API's types.
			t.Logf("schema check: %s", lastLine(kubecheck(t, manifests)))

			// kubectl's own client-side apply: maps every kind through discovery, reads
			// and defaults every object. Validation against the server's OpenAPI is off:
			// without a cluster there is none (the schema check above stands in).
			out := run(t, "", manifests, nil, kubectl, append(slices.Clone(kargs),
				"apply", "--dry-run=client", "--validate=false", "-o", "json", "-f", "-")...)
			var list struct {
				Kind  string      `json:"kind"`
				Items []k8sObject `json:"items"`
			}
			if err := json.Unmarshal(out, &list); err != nil || list.Kind != "List" {
				t.Fatalf("kubectl apply --dry-run=client -o json: %v (kind %q)", err, list.Kind)
			}
			fake.mu.Lock()
			if len(fake.writes) > 0 {
				t.Errorf("a client-side dry run sent writes: %v", fake.writes)
			}
			if fake.reads < len(list.Items) {
				t.Errorf("kubectl asked the fake cluster %d times for %d objects: it did not look them up", fake.reads, len(list.Items))
			}
			fake.mu.Unlock()
			t.Logf("kubectl apply --dry-run=client: %d objects would be created", len(list.Items))
			checkManifests(t, dir, list.Items)
		})
	}
}

func checkManifests(t *testing.T, dir string, objs []k8sObject) {
	byKind := map[string]map[string]k8sObject{}
	for _, o := range objs {
		if byKind[o.Kind] == nil {
			byKind[o.Kind] = map[string]k8sObject{}
		}
		byKind[o.Kind][o.Metadata.Name] = o
		if o.Metadata.Labels["app.kubernetes.io/part-of"] != "kitshop" {
			t.Errorf("%s %s has no label app.kubernetes.io/part-of=kitshop", o.Kind, o.Metadata.Name)
		}
		if strings.HasSuffix(dir, "demo") && o.Kind != "Namespace" && o.Metadata.Namespace != "kitshop" {
			t.Errorf("%s %s is in namespace %q, want kitshop", o.Kind, o.Metadata.Name, o.Metadata.Namespace)
		}
		for _, c := range append(slices.Clone(o.Spec.Template.Spec.InitContainers), o.Spec.Template.Spec.Containers...) {
			if !regexp.MustCompile(`:v?[0-9][A-Za-z0-9._-]*$`).MatchString(c.Image) {
				t.Errorf("%s %s: image %q is not pinned to a version tag", o.Kind, o.Metadata.Name, c.Image)
			}
			if c.Resources.Requests["cpu"] == "" || c.Resources.Requests["memory"] == "" ||
				c.Resources.Limits["cpu"] == "" || c.Resources.Limits["memory"] == "" {
				t.Errorf("%s %s: container %s lacks cpu/memory requests or limits", o.Kind, o.Metadata.Name, c.Name)
			}
		}
	}
	for svc, port := range services {
		d, ok := byKind["Deployment"][svc]
		if !ok {
			t.Errorf("no Deployment %s", svc)
			continue
		}
		if d.Spec.Replicas == nil || *d.Spec.Replicas != 3 {
			t.Errorf("Deployment %s: replicas %v, want 3", svc, d.Spec.Replicas)
		}
		pod := d.Spec.Template.Spec
		if pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot {
			t.Errorf("Deployment %s: runAsNonRoot is not set", svc)
		}
		if len(pod.Containers) != 1 {
			t.Fatalf("Deployment %s: %d containers, want 1", svc, len(pod.Containers))
		}
		c := pod.Containers[0]
		if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/health" {
			t.Errorf("Deployment %s: readiness probe is not GET /health", svc)
		}
		if c.LivenessProbe == nil {
			t.Errorf("Deployment %s: no liveness probe", svc)
		}
		sc := c.SecurityContext
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil ||
			*sc.AllowPrivilegeEscalation || !slices.Contains(sc.Capabilities.Drop, "ALL") {
			t.Errorf("Deployment %s: want a read-only root filesystem, no privilege escalation, all capabilities dropped", svc)
		}
		if !strings.HasPrefix(c.Image, "kitshop/"+svc+":") {
			t.Errorf("Deployment %s: image %q", svc, c.Image)
		}
		env := map[string]string{}
		for _, e := range c.Env {
			env[e.Name] = e.Value
		}
		if _, ok := env["KITSHOP_ADVERTISE_HOST"]; !ok {
			t.Errorf("Deployment %s: no KITSHOP_ADVERTISE_HOST: Consul would check 127.0.0.1", svc)
		}
		if got := env["KITSHOP_HTTP_ADDR"]; got != ":"+strconv.Itoa(port) {
			t.Errorf("Deployment %s: KITSHOP_HTTP_ADDR %q, want :%d", svc, got, port)
		}
		if _, ok := byKind["Service"][svc]; !ok {
			t.Errorf("no Service %s", svc)
		}
		if _, ok := byKind["PodDisruptionBudget"][svc]; !ok {
			t.Errorf("no PodDisruptionBudget %s", svc)
		}
	}
	if !strings.HasSuffix(dir, "demo") {
		return
	}
	for kind, names := range map[string][]string{
		"StatefulSet": {"postgres", "rabbitmq"},
		"Deployment":  {"consul", "zipkin", "prometheus", "grafana"},
		"Service":     {"consul", "postgres", "rabbitmq", "zipkin", "prometheus", "grafana"},
		"Namespace":   {"kitshop"},
	} {
		for _, name := range names {
			if _, ok := byKind[kind][name]; !ok {
				t.Errorf("the demo overlay has no %s %s", kind, name)
			}
		}
	}
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

// TestSchemaCheckRefuses makes sure the schema check would catch what kubectl's
// offline dry run lets through.
func TestSchemaCheckRefuses(t *testing.T) {
	kubecheck(t, []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: fine\n")) // builds it
	tests := []struct{ name, manifest, want string }{
		{"misspelt field", "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\nspec:\n  replica: 3\n", `unknown field "spec.replica"`},
		{"wrong type", "apiVersion: v1\nkind: Service\nmetadata:\n  name: x\nspec:\n  ports:\n    - port: http\n", "cannot unmarshal string"},
		{"unknown kind", "apiVersion: v1\nkind: Deploymnet\nmetadata:\n  name: x\n", `no kind "Deploymnet"`},
		{"bad name", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Not_A_Name\n", "RFC 1123"},
		{"bad label", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  labels:\n    app: \"has space\"\n", "label app value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := runErr("", []byte(tt.manifest), nil, kubecheckBuild.path)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("kubecheck accepted it or said %v; want an error with %q", err, tt.want)
			}
		})
	}
}
