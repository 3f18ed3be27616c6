package deploy

import (
	"encoding/json"
	"os"
	"reflect"
	"sort"
	"testing"

	"github.com/kitshop/kitshop/internal/stack"
)

// TestIntentionsMatchTheLauncher: the intentions compose and Kubernetes give their
// Consul agent (deploy/consul/intentions.json) are the table `kitshop up` writes, each
// ending in a deny of everyone else.
func TestIntentionsMatchTheLauncher(t *testing.T) {
	b, err := os.ReadFile("consul/intentions.json")
	if err != nil {
		t.Fatal(err)
	}
	var conf struct {
		ConfigEntries struct {
			Bootstrap []struct {
				Kind    string
				Name    string
				Sources []struct{ Name, Action string }
			} `json:"bootstrap"`
		} `json:"config_entries"`
	}
	if err := json.Unmarshal(b, &conf); err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, e := range conf.ConfigEntries.Bootstrap {
		if e.Kind != "service-intentions" || len(e.Sources) == 0 {
			t.Fatalf("entry %+v is not service intentions", e)
		}
		last := e.Sources[len(e.Sources)-1]
		if last.Name != "*" || last.Action != "deny" {
			t.Errorf("%s: the last source is %+v, want a deny of *", e.Name, last)
		}
		for _, s := range e.Sources[:len(e.Sources)-1] {
			if s.Action != "allow" {
				t.Errorf("%s: source %+v", e.Name, s)
			}
			got[e.Name] = append(got[e.Name], s.Name)
		}
	}
	want := map[string][]string{}
	for dest, sources := range stack.Intentions {
		want[dest] = append([]string(nil), sources...)
		sort.Strings(want[dest])
	}
	for dest := range got {
		sort.Strings(got[dest])
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("deploy/consul/intentions.json allows %v; kitshop up allows %v", got, want)
	}
}
