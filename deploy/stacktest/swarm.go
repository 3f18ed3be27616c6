package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

const swarmStack = "kitshopt"

// swarm is make swarm-test: the images of deploy/compose.sh build on a one-node swarm
// (made for the test, and left again, when the engine is not in one), the stack of
// deploy/swarm/kitshop.yml, and the smoke path through its published gateway.
func (t *test) swarm(ctx context.Context) error {
	composeSh := filepath.Join(t.root, "deploy", "compose.sh")
	t.logf("building the images (deploy/compose.sh build)")
	if err := t.command(ctx, nil, composeSh, "build"); err != nil {
		return err
	}
	state, err := t.output(ctx, nil, "docker", "info", "--format", "{{.Swarm.LocalNodeState}}")
	if err != nil {
		return err
	}
	if state != "active" {
		t.logf("docker swarm init (this engine is not in a swarm; the test leaves it again)")
		if _, err := t.output(ctx, nil, "docker", "swarm", "init", "--advertise-addr", "127.0.0.1"); err != nil {
			return err
		}
		defer func() {
			if _, err := t.output(context.Background(), nil, "docker", "swarm", "leave", "--force"); err != nil {
				t.logf("docker swarm leave: %v", err)
			}
		}()
	}

	env, err := swarmEnv(t.root)
	if err != nil {
		return err
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	env = append(env, fmt.Sprintf("KITSHOP_GATEWAY_PORT=%d", port))
	for _, name := range []string{"POSTGRES_PASSWORD", "RABBITMQ_PASSWORD", "KITSHOP_ADMIN_PASSWORD"} {
		env = append(env, name+"="+randomHex(12))
	}
	filter := "label=com.docker.stack.namespace=" + swarmStack
	if out, _ := t.output(ctx, nil, "docker", "ps", "-aq", "--filter", filter); out != "" {
		t.logf("removing the stack of an earlier run")
		if err := t.removeStack(ctx); err != nil {
			return err
		}
	}
	t.logf("docker stack deploy -c deploy/swarm/kitshop.yml %s (gateway on port %d, published in host mode)", swarmStack, port)
	if _, err := t.output(ctx, env, "docker", "stack", "deploy", "--resolve-image", "never", "-c", "deploy/swarm/kitshop.yml", swarmStack); err != nil {
		return err
	}
	checkErr := t.swarmChecks(ctx, port)
	if checkErr != nil {
		t.logf("FAILED: %v", checkErr)
		if out, err := t.output(context.Background(), nil, "docker", "stack", "ps", "--no-trunc", "--format", "{{.Name}} {{.CurrentState}} {{.Error}}", swarmStack); err == nil {
			fmt.Println(tail(out, 60))
		}
	}
	if t.keep {
		t.logf("-keep: the stack stays up; remove it with docker stack rm %s (and its volumes)", swarmStack)
		return checkErr
	}
	downErr := t.removeStack(context.Background())
	if downErr == nil {
		downErr = t.nothingLeft(context.Background(), filter)
	}
	if checkErr != nil {
		return checkErr
	}
	if downErr != nil {
		return downErr
	}
	t.logf("PASS: swarm-test in %s", time.Since(t.started).Round(time.Second))
	return nil
}

// swarmEnv is the environment that selects the stand-in images (docker stack deploy
// reads variables from the environment only).
func swarmEnv(root string) ([]string, error) {
	f, err := os.Open(filepath.Join(root, "deploy", "standin", "images.env"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var env []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" && !strings.HasPrefix(line, "#") {
			env = append(env, line)
		}
	}
	return env, sc.Err()
}

func (t *test) swarmChecks(ctx context.Context, port int) error {
	want := map[string]string{"user": "2/2", "inventory": "2/2", "order": "2/2", "payment": "2/2", "notification": "2/2", "gateway": "1/1"}
	err := eventually(ctx, 5*time.Minute, 3*time.Second, func() error {
		out, err := t.output(ctx, nil, "docker", "stack", "services", "--format", "{{.Name}} {{.Replicas}}", swarmStack)
		if err != nil {
			return err
		}
		got := map[string]string{}
		for _, line := range strings.Split(out, "\n") {
			if name, replicas, ok := strings.Cut(line, " "); ok {
				got[strings.TrimPrefix(name, swarmStack+"_")] = replicas
			}
		}
		for svc, r := range want {
			if got[svc] != r {
				return fmt.Errorf("%s has %q tasks running, want %s", svc, got[svc], r)
			}
		}
		states, err := t.output(ctx, nil, "docker", "service", "ps", "--format", "{{.CurrentState}}", swarmStack+"_seed")
		if err != nil {
			return err
		}
		if !strings.Contains(states, "Complete") {
			return fmt.Errorf("the seed step has not completed: %s", strings.ReplaceAll(states, "\n", "; "))
		}
		return nil
	})
	if err != nil {
		return err
	}
	t.logf("every service runs its replicas (2 each, the gateway 1); the seed step completed")

	consulTask, err := t.output(ctx, nil, "docker", "ps", "-q", "--filter", "label=com.docker.swarm.service.name="+swarmStack+"_consul")
	if err != nil || consulTask == "" {
		return fmt.Errorf("no running Consul task: %v", err)
	}
	var summary []string
	for svc, r := range want {
		n, _, _ := strings.Cut(r, "/")
		err := eventually(ctx, 90*time.Second, 2*time.Second, func() error {
			// Consul is not published in the swarm: ask it from inside its task.
			out, err := t.output(ctx, nil, "docker", "exec", strings.Fields(consulTask)[0], "wget", "-qO-", "http://127.0.0.1:8500/v1/health/service/"+svc+"?passing=1")
			if err != nil {
				return err
			}
			var entries []struct {
				Service struct{ Address string }
			}
			if err := json.Unmarshal([]byte(out), &entries); err != nil {
				return err
			}
			addrs := map[string]bool{}
			for _, e := range entries {
				addrs[e.Service.Address] = true
			}
			if fmt.Sprint(len(addrs)) != n || len(entries) != len(addrs) {
				return fmt.Errorf("%s: %d passing instances at %d addresses, want %s", svc, len(entries), len(addrs), n)
			}
			return nil
		})
		if err != nil {
			return err
		}
		summary = append(summary, svc+" "+n)
	}
	t.logf("passing in Consul, each task at its own overlay address: %s", strings.Join(sorted(summary), ", "))

	// The gateway's demo CA, from its task, so that the test talks HTTPS as a client on
	// another host must (the published port arrives from the network's address).
	gatewayTask, err := t.output(ctx, nil, "docker", "ps", "-q", "--filter", "label=com.docker.swarm.service.name="+swarmStack+"_gateway")
	if err != nil || gatewayTask == "" {
		return fmt.Errorf("no running gateway task: %v", err)
	}
	dir, err := os.MkdirTemp("", "kitshop-swarm-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ca := filepath.Join(dir, "ca.pem")
	if _, err := t.output(ctx, nil, "docker", "cp", strings.Fields(gatewayTask)[0]+":/var/lib/kitshop/tls/ca.pem", ca); err != nil {
		return err
	}
	gateway, err := newAPI("").withCA(fmt.Sprintf("https://localhost:%d", port), ca)
	if err != nil {
		return err
	}
	s := &shop{gateway: gateway, logf: t.logf}
	if err := eventually(ctx, time.Minute, time.Second, func() error {
		_, err := s.gateway.want(ctx, http.StatusOK, "GET", "/v1/products?limit=1", nil, nil)
		return err
	}); err != nil {
		return err
	}
	if _, err := s.story(ctx); err != nil {
		return err
	}
	return nil
}

// removeStack removes the stack and waits until its containers are gone, then removes
// its volumes.
func (t *test) removeStack(ctx context.Context) error {
	t.logf("docker stack rm %s", swarmStack)
	if _, err := t.output(ctx, nil, "docker", "stack", "rm", swarmStack); err != nil {
		return err
	}
	filter := "label=com.docker.stack.namespace=" + swarmStack
	err := eventually(ctx, 2*time.Minute, time.Second, func() error {
		out, err := t.output(ctx, nil, "docker", "ps", "-aq", "--filter", filter)
		if err == nil && out != "" {
			err = errors.New("containers still there: " + strings.ReplaceAll(out, "\n", " "))
		}
		return err
	})
	if err != nil {
		return err
	}
	// A volume may stay in use for a moment after its container is gone.
	return eventually(ctx, 30*time.Second, time.Second, func() error {
		vols, err := t.output(ctx, nil, "docker", "volume", "ls", "-q", "--filter", filter)
		if err != nil || vols == "" {
			return err
		}
		_, err = t.output(ctx, nil, "docker", append([]string{"volume", "rm"}, strings.Fields(vols)...)...)
		return err
	})
}
