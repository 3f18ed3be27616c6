package deploy_test

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestComposeLogsProfile: with the "logs" profile and deploy/logs/compose.yml, the log
// store runs and every other container's output goes to it; without them, neither.
func TestComposeLogsProfile(t *testing.T) {
	admin := "KITSHOP_ADMIN_PASSWORD=" + testAdminPassword
	plain := composeConfig(t, []string{admin}, "docker-compose.yml")
	// docker-compose config lists it; up starts it only with the profile.
	if p := plain["victorialogs"].Profiles; !slices.Equal(p, []string{"logs"}) {
		t.Errorf("victorialogs has profiles %v, want [logs]: it runs with the logs profile only", p)
	}
	for name, s := range plain {
		if s.Logging != nil {
			t.Errorf("%s: logging %+v without the logs profile, want the engine's default", name, s.Logging)
		}
	}

	tests := []struct {
		name       string
		env        []string
		files      []string
		image      string // prefix
		syslogPort string
	}{
		{"defaults", []string{admin, "COMPOSE_PROFILES=logs"}, nil, "victoriametrics/victoria-logs:v", "5514"},
		{"ports of its own", []string{admin, "COMPOSE_PROFILES=logs", "KITSHOP_SYSLOG_PORT=6514", "KITSHOP_LOGS_PORT=19428"}, nil, "victoriametrics/victoria-logs:v", "6514"},
		{"stand-ins", []string{admin, "COMPOSE_PROFILES=logs", "KITSHOP_VICTORIALOGS_IMAGE=" + readEnvFile(t, filepath.Join(root(t), "deploy", "standin", "images.env"))["KITSHOP_VICTORIALOGS_IMAGE"]},
			[]string{"deploy/standin/compose.yml"}, "kitshop-standin/victoria-logs:v", "5514"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := append([]string{"docker-compose.yml"}, tt.files...)
			svcs := composeConfig(t, tt.env, append(files, "deploy/logs/compose.yml")...)
			store, ok := svcs["victorialogs"]
			if !ok {
				t.Fatal("no victorialogs service with the logs profile")
			}
			if !strings.HasPrefix(store.Image, tt.image) {
				t.Errorf("victorialogs image %q, want %s<version>", store.Image, tt.image)
			}
			if store.Healthcheck == nil || store.Logging != nil {
				t.Errorf("victorialogs: health check %+v, logging %+v; want a health check and its own output kept by the engine", store.Healthcheck, store.Logging)
			}
			published := map[string]string{} // container port → host port
			for _, p := range store.Ports {
				host, pub := portHost(p)
				if host != "127.0.0.1" {
					t.Errorf("victorialogs is published as %v, want on 127.0.0.1 only", p)
				}
				published[portTarget(p)] = pub
			}
			if published["5514"] != tt.syslogPort || published["9428"] == "" {
				t.Errorf("victorialogs publishes %v, want syslog 5514 on %s and the API 9428", published, tt.syslogPort)
			}
			if !slices.Contains(store.Command, "-syslog.listenAddr.tcp=:5514") {
				t.Errorf("victorialogs command %v does not listen for syslog on :5514", store.Command)
			}
			// Every container but the store's own, third parties and one-shots too.
			if len(svcs) != len(plain) {
				t.Errorf("%d services with deploy/logs/compose.yml, want the %d of docker-compose.yml", len(svcs), len(plain))
			}
			for name, s := range svcs {
				if name == "victorialogs" {
					continue
				}
				l := s.Logging
				if l == nil || l.Driver != "syslog" {
					t.Errorf("%s: logging %+v, want the syslog driver", name, l)
					continue
				}
				if want := "tcp://127.0.0.1:" + published["5514"]; l.Options["syslog-address"] != want {
					t.Errorf("%s: syslog-address %q, want %s (the store's published syslog port)", name, l.Options["syslog-address"], want)
				}
				if !strings.HasPrefix(l.Options["syslog-format"], "rfc5424") || l.Options["mode"] != "non-blocking" || l.Options["tag"] != "{{.Name}}" {
					t.Errorf("%s: logging options %v, want RFC 5424, non-blocking, tagged with the container's name", name, l.Options)
				}
				if s.DependsOn["victorialogs"].Condition != "service_healthy" {
					t.Errorf("%s: starts before the store is healthy; its log driver could not connect", name)
				}
			}
			for svc := range services {
				if got := svcs[svc].Environment["KITSHOP_LOG_LEVEL"]; got != "debug" {
					t.Errorf("%s: KITSHOP_LOG_LEVEL %q, want debug (the per-call lines that follow a checkout)", svc, got)
				}
			}
			g := svcs["grafana"]
			if !strings.HasPrefix(g.Environment["GF_INSTALL_PLUGINS"], "victoriametrics-logs-datasource ") {
				t.Errorf("grafana: GF_INSTALL_PLUGINS %q, want the VictoriaLogs data source plugin, pinned", g.Environment["GF_INSTALL_PLUGINS"])
			}
			prov := g.Environment["GF_PATHS_PROVISIONING"]
			for _, want := range []string{"/datasources/prometheus.yaml", "/datasources/victorialogs.yaml", "/dashboards"} {
				if !slices.ContainsFunc(g.Volumes, func(v any) bool { return volumeTarget(v) == prov+want }) {
					t.Errorf("grafana: nothing mounted on %s%s", prov, want)
				}
			}
		})
	}
}

// portTarget is the container port of a published port, in either of compose's forms.
func portTarget(p any) string {
	switch p := p.(type) {
	case string:
		parts := strings.Split(strings.Split(p, "/")[0], ":")
		return parts[len(parts)-1]
	case map[string]any:
		return fmt.Sprint(p["target"])
	}
	return ""
}
