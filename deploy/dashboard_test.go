package deploy_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// dashboard is the part of a Grafana dashboard the checks read.
type dashboard struct {
	UID        string  `json:"uid"`
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Query struct {
				Query string `json:"query"`
			} `json:"query"`
			Datasource datasource `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int        `json:"id"`
	Type       string     `json:"type"`
	Title      string     `json:"title"`
	Datasource datasource `json:"datasource"`
	GridPos    struct{ X, Y, W, H int }
	Targets    []struct {
		RefID      string     `json:"refId"`
		Expr       string     `json:"expr"`
		Datasource datasource `json:"datasource"`
	} `json:"targets"`
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root(t), "deploy", "grafana", "dashboards", "kitshop.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	return d
}

// queries are the dashboard's PromQL expressions: every panel target, and the metric
// of every label_values() variable, by where they come from.
func (d dashboard) queries() map[string]string {
	out := map[string]string{}
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			out[p.Title+" "+tg.RefID] = tg.Expr
		}
	}
	labelValues := regexp.MustCompile(`^label_values\(\s*([^,]+),\s*\w+\s*\)$`)
	for _, v := range d.Templating.List {
		if m := labelValues.FindStringSubmatch(v.Query.Query); m != nil {
			out["variable "+v.Name] = m[1]
		} else {
			out["variable "+v.Name] = v.Query.Query
		}
	}
	return out
}

// TestDashboard checks the dashboard without a stack: it parses, every panel has a
// place and a query on the provisioned data source, and every query names kitshop
// metrics only (TestPrometheus checks them against live /metrics).
func TestDashboard(t *testing.T) {
	d := loadDashboard(t)
	provisioning, err := os.ReadFile(filepath.Join(root(t), "deploy", "grafana", "provisioning", "datasources", "prometheus.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	uid := regexp.MustCompile(`(?m)^\s+uid:\s*(\S+)$`).FindSubmatch(provisioning)
	if uid == nil {
		t.Fatal("the provisioned data source has no uid")
	}
	want := datasource{Type: "prometheus", UID: string(uid[1])}
	if d.UID == "" || d.Title == "" {
		t.Error("the dashboard has no uid or title")
	}
	ids := map[int]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.GridPos.W <= 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: gridPos %+v does not fit 24 columns", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource != want || len(p.Targets) == 0 {
			t.Errorf("panel %q: data source %+v with %d queries, want %+v", p.Title, p.Datasource, len(p.Targets), want)
		}
		for _, tg := range p.Targets {
			if tg.Datasource != want || strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("panel %q query %s: data source %+v, expr %q", p.Title, tg.RefID, tg.Datasource, tg.Expr)
			}
		}
	}
	var metrics []string
	for where, q := range d.queries() {
		names := metricNames(q)
		if len(names) == 0 {
			t.Errorf("%s: %q names no metric", where, q)
		}
		for _, n := range names {
			if !strings.HasPrefix(n, "kitshop_") && !prometheusSeries[n] {
				t.Errorf("%s: %s is not a kitshop metric", where, n)
			}
			metrics = append(metrics, n)
		}
	}
	slices.Sort(metrics)
	t.Logf("the dashboard's metrics: %s", strings.Join(slices.Compact(metrics), " "))
}

// prometheusSeries are the series Prometheus makes itself for every target; no
// /metrics lists them.
var prometheusSeries = map[string]bool{"up": true, "scrape_duration_seconds": true, "scrape_samples_scraped": true}

// promqlWords are PromQL's aggregations and keywords: an identifier among them is not
// a metric.
var promqlWords = map[string]bool{
	"sum": true, "avg": true, "min": true, "max": true, "count": true, "group": true, "stddev": true,
	"stdvar": true, "topk": true, "bottomk": true, "quantile": true, "count_values": true, "limitk": true,
	"limit_ratio": true, "by": true, "without": true, "on": true, "ignoring": true, "group_left": true,
	"group_right": true, "bool": true, "and": true, "or": true, "unless": true, "offset": true, "atan2": true,
	"inf": true, "nan": true,
}

// metricNames returns the metric names an expression selects: identifiers outside
// label matchers, strings, ranges and grouping lists that are neither a function
// call nor a PromQL keyword. Grafana variables ($name, ${name}) are skipped.
func metricNames(expr string) []string {
	var names []string
	isStart := func(c byte) bool { return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
	isPart := func(c byte) bool { return isStart(c) || c >= '0' && c <= '9' }
	skipTo := func(i int, close byte) int { // index after the matching close, strings skipped
		for i++; i < len(expr) && expr[i] != close; i++ {
			if q := expr[i]; q == '"' || q == '\'' || q == '`' {
				for i++; i < len(expr) && expr[i] != q; i++ {
					if expr[i] == '\\' && q != '`' {
						i++
					}
				}
			}
		}
		return i + 1
	}
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			j := i
			for j++; j < len(expr) && expr[j] != c; j++ {
				if expr[j] == '\\' && c != '`' {
					j++
				}
			}
			i = j + 1
		case c == '{':
			i = skipTo(i, '}')
		case c == '[':
			i = skipTo(i, ']')
		case c == '$':
			for i++; i < len(expr) && (isPart(expr[i]) || expr[i] == '{' || expr[i] == '}'); i++ {
			}
		case c >= '0' && c <= '9' || c == '.':
			for ; i < len(expr) && (isPart(expr[i]) || expr[i] == '.'); i++ {
			}
		case isStart(c):
			j := i
			for ; j < len(expr) && isPart(expr[j]); j++ {
			}
			word := expr[i:j]
			k := j
			for ; k < len(expr) && expr[k] == ' '; k++ {
			}
			call := k < len(expr) && expr[k] == '('
			lower := strings.ToLower(word)
			switch {
			case call && (lower == "by" || lower == "without" || lower == "on" || lower == "ignoring" ||
				lower == "group_left" || lower == "group_right"):
				j = skipTo(k, ')') // a list of label names
			case call || promqlWords[lower]:
			default:
				names = append(names, word)
			}
			i = j
		default:
			i++
		}
	}
	return names
}

func TestMetricNames(t *testing.T) {
	tests := []struct {
		expr string
		want []string
	}{
		{`up`, []string{"up"}},
		{`sum by (service, endpoint) (rate(kitshop_endpoint_requests_total{service=~"$service", outcome!="ok"}[$__rate_interval]))`,
			[]string{"kitshop_endpoint_requests_total"}},
		{`histogram_quantile(0.99, sum by (le) (rate(a_bucket[5m]))) / on (x) group_left(y) b`, []string{"a_bucket", "b"}},
		{`sum(rate(x{l="}{[by"}[1m])) without (instance) > bool 0.5 or vector(1)`, []string{"x"}},
		{`max(kitshop_order_pending_orders) offset 5m`, []string{"kitshop_order_pending_orders"}},
		{`count_values("v", y) and ignoring(a) z unless w`, []string{"y", "z", "w"}},
		{`1e3 * rate(c[${__range}])`, []string{"c"}},
	}
	for _, tt := range tests {
		if got := metricNames(tt.expr); !slices.Equal(got, tt.want) {
			t.Errorf("metricNames(%q) = %q, want %q", tt.expr, got, tt.want)
		}
	}
}
