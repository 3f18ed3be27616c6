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
	{"batch", "v1", "Job", "jobs", true},
	{"policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", true},
	{"networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", true},
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
			Metadata struct {
				Labels map[string]string `json:"labels"`
			} `json:"metadata"`
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
	Volumes        []struct {
		Name   string `json:"name"`
		Secret *struct {
			SecretName string `json:"secretName"`
			Items      []struct {
				Key  string `json:"key"`
				Path string `json:"path"`
			} `json:"items"`
		} `json:"secret"`
	} `json:"volumes"`
}

type containerPort struct {
	Name          string `json:"name"`
	ContainerPort int    `json:"containerPort"`
}

type container struct {
	Name           string          `json:"name"`
	Image          string          `json:"image"`
	Args           []string        `json:"args"`
	Ports          []containerPort `json:"ports"`
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
		Name      string `json:"name"`
		Value     string `json:"value"`
		ValueFrom struct {
			SecretKeyRef struct {
				Name string `json:"name"`
				Key  string `json:"key"`
			} `json:"secretKeyRef"`
		} `json:"valueFrom"`
	} `json:"env"`
}

func TestKubernetes(t *testing.T) {
	for _, dir := range []string{"k8s/base", "k8s/overlays/demo"} {
		t.Run(strings.ReplaceAll(dir, "/", "_"), func(t *testing.T) {
			kubectl, kargs, fake := kubectlFor(t)
			manifests := run(t, root(t), nil, nil, kubectl, append(slices.Clone(kargs), "kustomize", filepath.Join("deploy", dir))...)

			// Schema: every document decodes strictly into the API's types; kubecheck
			// knows no NetworkPolicy, whose fields are checked strictly here.
			others, policies := networkPolicies(t, manifests)
			t.Logf("schema check: %s", lastLine(kubecheck(t, others)))

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
			if strings.HasSuffix(dir, "demo") {
				checkNetworkPolicies(t, list.Items, policies)
			}
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
			if ref := e.ValueFrom.SecretKeyRef; e.Name == "KITSHOP_CONSUL_TOKEN" {
				env[e.Name] = ref.Name + "/" + ref.Key
			}
		}
		// Consul refuses registrations without a token: each service has its own.
		if got := env["KITSHOP_CONSUL_TOKEN"]; got != "kitshop-consul-tokens/"+svc {
			t.Errorf("Deployment %s: KITSHOP_CONSUL_TOKEN from %q, want the Secret kitshop-consul-tokens, key %s", svc, got, svc)
		}
		if _, ok := env["KITSHOP_ADVERTISE_HOST"]; !ok {
			t.Errorf("Deployment %s: no KITSHOP_ADVERTISE_HOST: Consul would check 127.0.0.1", svc)
		}
		if got := env["KITSHOP_HTTP_ADDR"]; got != ":"+strconv.Itoa(port) {
			t.Errorf("Deployment %s: KITSHOP_HTTP_ADDR %q, want :%d", svc, got, port)
		}
		// The demo's admin password is in this repository: only the demo may say so.
		if _, known := env["KITSHOP_ALLOW_KNOWN_ADMIN_PASSWORD"]; known != (svc == "user" && strings.HasSuffix(dir, "demo")) {
			t.Errorf("Deployment %s: KITSHOP_ALLOW_KNOWN_ADMIN_PASSWORD set %v", svc, known)
		}
		// The gateway's /metrics and detailed /health are on its admin listener.
		if svc == "gateway" && (env["KITSHOP_ADMIN_ADDR"] != ":9080" || !slices.Contains(c.Ports, containerPort{Name: "admin", ContainerPort: 9080})) {
			t.Errorf("Deployment gateway: KITSHOP_ADMIN_ADDR %q and ports %v, want :9080 and a port admin", env["KITSHOP_ADMIN_ADDR"], c.Ports)
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
	checkConsulACLs(t, byKind)
	for kind, names := range map[string][]string{
		"StatefulSet": {"consul", "postgres", "rabbitmq"},
		"Deployment":  {"zipkin", "prometheus", "grafana"},
		"Job":         {"consul-bootstrap"},
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

// checkConsulACLs: the demo's Consul takes its management token from the Secret
// kitshop-consul-tokens, and the bootstrap Job is given every token in it, at the
// paths kitshop bootstrap reads them from.
func checkConsulACLs(t *testing.T, byKind map[string]map[string]k8sObject) {
	server := byKind["StatefulSet"]["consul"].Spec.Template.Spec
	if len(server.Containers) != 1 {
		t.Fatalf("StatefulSet consul: %d containers, want 1", len(server.Containers))
	}
	c := server.Containers[0]
	if !slices.Contains(c.Args, "-config-file=/consul/kitshop/server.hcl") ||
		!slices.Contains(c.Args, `-hcl=acl { tokens { initial_management = "$(CONSUL_MANAGEMENT_TOKEN)" } }`) {
		t.Errorf("consul's args %q: want server.hcl (ACLs on, default deny) and the initial management token", c.Args)
	}
	managed := false
	for _, e := range c.Env {
		ref := e.ValueFrom.SecretKeyRef
		managed = managed || e.Name == "CONSUL_MANAGEMENT_TOKEN" && ref.Name == "kitshop-consul-tokens" && ref.Key == "management"
	}
	if !managed {
		t.Error("consul: CONSUL_MANAGEMENT_TOKEN is not the key management of the Secret kitshop-consul-tokens")
	}

	job := byKind["Job"]["consul-bootstrap"].Spec.Template.Spec
	if len(job.Containers) != 1 || !slices.Contains(job.Containers[0].Args, "-tokens-given") {
		t.Fatalf("Job consul-bootstrap: want one container running kitshop bootstrap -tokens-given, have %+v", job.Containers)
	}
	want := map[string]string{"management": "consul/management.token", "agent": "consul/agent.token"}
	for svc := range services {
		want[svc] = "tokens/" + svc + "/token"
	}
	got := map[string]string{}
	for _, v := range job.Volumes {
		if v.Secret != nil && v.Secret.SecretName == "kitshop-consul-tokens" {
			for _, item := range v.Secret.Items {
				got[item.Key] = item.Path
			}
		}
	}
	for key, path := range want {
		if got[key] != path {
			t.Errorf("Job consul-bootstrap: the Secret's key %s at %q, want %q", key, got[key], path)
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

// networkPolicy is the part of a NetworkPolicy (networking.k8s.io/v1) kitshop writes;
// decoding refuses any other field, so a misspelt one fails the test.
type networkPolicy struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string            `json:"name"`
		Namespace string            `json:"namespace"`
		Labels    map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec struct {
		PodSelector labelSelector `json:"podSelector"`
		PolicyTypes []string      `json:"policyTypes"`
		Ingress     []struct {
			From []struct {
				PodSelector       *labelSelector `json:"podSelector"`
				NamespaceSelector *labelSelector `json:"namespaceSelector"`
				IPBlock           *struct {
					CIDR   string   `json:"cidr"`
					Except []string `json:"except"`
				} `json:"ipBlock"`
			} `json:"from"`
			Ports []struct {
				Protocol string          `json:"protocol"`
				Port     json.RawMessage `json:"port"`
			} `json:"ports"`
		} `json:"ingress"`
	} `json:"spec"`
}

type labelSelector struct {
	MatchLabels      map[string]string `json:"matchLabels"`
	MatchExpressions []struct {
		Key      string   `json:"key"`
		Operator string   `json:"operator"`
		Values   []string `json:"values"`
	} `json:"matchExpressions"`
}

func (s labelSelector) matches(labels map[string]string) bool {
	for k, v := range s.MatchLabels {
		if labels[k] != v {
			return false
		}
	}
	for _, e := range s.MatchExpressions {
		v, has := labels[e.Key]
		switch e.Operator {
		case "In":
			if !has || !slices.Contains(e.Values, v) {
				return false
			}
		case "NotIn":
			if has && slices.Contains(e.Values, v) {
				return false
			}
		case "Exists":
			if !has {
				return false
			}
		case "DoesNotExist":
			if has {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// networkPolicies splits a manifest stream into the documents kubecheck checks and the
// NetworkPolicies, decoded strictly.
func networkPolicies(t *testing.T, manifests []byte) (others []byte, policies []networkPolicy) {
	t.Helper()
	var rest []string
	var policyDocs []string
	for _, doc := range strings.Split(string(manifests), "\n---\n") {
		if regexp.MustCompile(`(?m)^kind: NetworkPolicy$`).MatchString(doc) {
			policyDocs = append(policyDocs, doc)
		} else {
			rest = append(rest, doc)
		}
	}
	if len(policyDocs) > 0 {
		var raws []json.RawMessage
		yamlToJSON(t, []byte(strings.Join(policyDocs, "\n---\n")), &raws)
		for _, raw := range raws {
			dec := json.NewDecoder(strings.NewReader(string(raw)))
			dec.DisallowUnknownFields()
			var p networkPolicy
			if err := dec.Decode(&p); err != nil {
				t.Errorf("NetworkPolicy %s: %v", raw, err)
				continue
			}
			if p.APIVersion != "networking.k8s.io/v1" || p.Metadata.Name == "" {
				t.Errorf("NetworkPolicy %q: apiVersion %q", p.Metadata.Name, p.APIVersion)
			}
			policies = append(policies, p)
		}
	}
	return []byte(strings.Join(rest, "\n---\n")), policies
}

// pod is a workload's pod template as the policies see it.
type pod struct {
	name   string
	labels map[string]string
	ports  map[string]int // by name
}

// peer is where a connection comes from: a pod of the namespace, or (nil labels)
// anything outside it: another namespace, a node's process, the internet.
type peer struct {
	name   string
	labels map[string]string
}

var outside = peer{name: "outside the namespace"}

// allowed says whether the policies let from open a connection to port (by name) of
// dst, with Kubernetes' rules: a pod no policy selects takes everything; a selected pod
// takes what one of its policies' rules allows. ipBlock and namespaceSelector peers
// are taken to match anything, inside or outside (the safe side for this check).
func allowed(policies []networkPolicy, dst pod, port string, from peer) bool {
	selected := false
	for _, p := range policies {
		if !p.Spec.PodSelector.matches(dst.labels) || (len(p.Spec.PolicyTypes) > 0 && !slices.Contains(p.Spec.PolicyTypes, "Ingress")) {
			continue
		}
		selected = true
		for _, rule := range p.Spec.Ingress {
			portOK := len(rule.Ports) == 0
			for _, rp := range rule.Ports {
				var name string
				var number int
				if json.Unmarshal(rp.Port, &name) == nil && name == port || json.Unmarshal(rp.Port, &number) == nil && number == dst.ports[port] {
					portOK = true
				}
			}
			fromOK := len(rule.From) == 0
			for _, f := range rule.From {
				switch {
				case f.IPBlock != nil || f.NamespaceSelector != nil:
					fromOK = true
				case f.PodSelector != nil && from.labels != nil && f.PodSelector.matches(from.labels):
					fromOK = true
				}
			}
			if portOK && fromOK {
				return true
			}
		}
	}
	return !selected
}

// checkNetworkPolicies: in the demo namespace only the gateway's public port takes
// connections from outside; Consul, PostgreSQL and RabbitMQ take them from the kitshop
// pods that use them only; and every connection the shop makes is allowed.
func checkNetworkPolicies(t *testing.T, objs []k8sObject, policies []networkPolicy) {
	pods := map[string]pod{}
	for _, o := range objs {
		if o.Kind != "Deployment" && o.Kind != "StatefulSet" && o.Kind != "Job" {
			continue
		}
		p := pod{name: o.Metadata.Name, labels: o.Spec.Template.Metadata.Labels, ports: map[string]int{}}
		for _, c := range o.Spec.Template.Spec.Containers {
			for _, cp := range c.Ports {
				p.ports[cp.Name] = cp.ContainerPort
			}
		}
		pods[p.name] = p
	}
	from := func(name string) peer { return peer{name: name, labels: pods[name].labels} }
	denyAll := false
	for _, p := range policies {
		if len(p.Spec.PodSelector.MatchLabels) == 0 && len(p.Spec.PodSelector.MatchExpressions) == 0 &&
			slices.Contains(p.Spec.PolicyTypes, "Ingress") && len(p.Spec.Ingress) == 0 {
			denyAll = true
		}
	}
	if !denyAll {
		t.Error("no NetworkPolicy denies ingress to every pod by default")
	}

	// From outside: the gateway's public port, nothing else.
	for _, dst := range pods {
		for port := range dst.ports {
			want := dst.name == "gateway" && port == "http"
			if got := allowed(policies, dst, port, outside); got != want {
				t.Errorf("%s:%s from outside the namespace: allowed %v, want %v", dst.name, port, got, want)
			}
		}
	}
	// A pod of the namespace that is not kitshop's reaches none of it but the gateway.
	intruder := peer{name: "a pod not of kitshop", labels: map[string]string{"app": "intruder"}}
	for _, dst := range pods {
		for port := range dst.ports {
			want := dst.name == "gateway" && port == "http"
			if got := allowed(policies, dst, port, intruder); got != want {
				t.Errorf("%s:%s from %s: allowed %v, want %v", dst.name, port, intruder.name, got, want)
			}
		}
	}

	// What the shop needs, and nothing more to the infrastructure.
	services := []string{"user", "inventory", "order", "payment", "notification"}
	needs := map[string][]string{ // destination:port → callers
		"consul:http":       append([]string{"gateway", "prometheus", "consul-bootstrap"}, services...),
		"postgres:postgres": services,
		"rabbitmq:amqp":     {"order", "notification"},
		"zipkin:http":       append([]string{"gateway"}, services...),
		"prometheus:http":   {"grafana"},
		"gateway:admin":     {"consul", "prometheus"},
		"user:http":         {"gateway", "inventory", "order", "notification", "consul", "prometheus"},
		"inventory:http":    {"gateway", "order", "consul", "prometheus"},
		"order:http":        {"gateway", "consul", "prometheus"},
		"payment:http":      {"order", "consul", "prometheus"},
		"notification:http": {"gateway", "consul", "prometheus"},
	}
	for target, callers := range needs {
		name, port, _ := strings.Cut(target, ":")
		dst, ok := pods[name]
		if _, hasPort := dst.ports[port]; !ok || !hasPort {
			t.Errorf("no pod %s with a port %s", name, port)
			continue
		}
		for caller := range pods {
			want := slices.Contains(callers, caller)
			if name == "consul" || name == "postgres" || name == "rabbitmq" {
				if got := allowed(policies, dst, port, from(caller)); got != want {
					t.Errorf("%s from %s: allowed %v, want %v", target, caller, got, want)
				}
			} else if want && !allowed(policies, dst, port, from(caller)) {
				t.Errorf("%s from %s: refused, and the shop needs it", target, caller)
			}
		}
	}
}
