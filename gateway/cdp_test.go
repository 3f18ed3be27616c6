package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/websocket"

	"github.com/kitshop/kitshop/pkg/testenv"
)

// browser is headless Chromium driven through the DevTools protocol: enough of it to
// load a page, run JavaScript in it and wait for the page to reach a state.
type browser struct {
	t    *testing.T
	cmd  *exec.Cmd
	dir  string
	ws   *websocket.Conn
	next int
}

// startBrowser runs the Debian package chromium; without it the test is skipped (or
// fails under CI=true).
func startBrowser(t *testing.T) *browser {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		testenv.Missing(t, "chromium (Debian package chromium)", err)
	}
	// Not t.TempDir: Chromium's helper processes may still write to the profile for a
	// moment after the browser exits, and TempDir's cleanup fails the test on that.
	dir, err := os.MkdirTemp("", "kitshop-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(path, "--headless", "--no-sandbox", "--disable-gpu",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--no-first-run", "--disable-dev-shm-usage", "--user-data-dir="+dir,
		"--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
		"--remote-allow-origins=http://127.0.0.1", "about:blank")
	if err := cmd.Start(); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	b := &browser{t: t, cmd: cmd, dir: dir}
	t.Cleanup(b.close)

	var port int
	testenv.Eventually(t, 30*time.Second, "chromium writes DevToolsActivePort", func() bool {
		data, err := os.ReadFile(filepath.Join(dir, "DevToolsActivePort"))
		if err != nil {
			return false
		}
		port, err = strconv.Atoi(strings.SplitN(string(data), "\n", 2)[0])
		return err == nil && port > 0
	})
	var targets []struct {
		Type string `json:"type"`
		WS   string `json:"webSocketDebuggerUrl"`
	}
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/json/list", port))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&targets); err != nil {
		t.Fatal(err)
	}
	for _, tg := range targets {
		if tg.Type == "page" {
			if b.ws, err = websocket.Dial(tg.WS, "", "http://127.0.0.1"); err != nil {
				t.Fatalf("devtools websocket: %v", err)
			}
			return b
		}
	}
	t.Fatalf("no page target in %+v", targets)
	return nil
}

// close asks Chromium to quit, which takes its helper processes down too, and kills
// it if it has not within a few seconds.
func (b *browser) close() {
	exited := make(chan struct{})
	go func() { _ = b.cmd.Wait(); close(exited) }()
	if b.ws != nil {
		_ = websocket.JSON.Send(b.ws, map[string]any{"id": b.next + 1, "method": "Browser.close"})
		b.ws.Close()
	}
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		_ = b.cmd.Process.Kill()
		<-exited
	}
	for range 50 {
		if os.RemoveAll(b.dir) == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// call sends one DevTools command and returns its result, skipping the events that
// arrive in between.
func (b *browser) call(method string, params any) (json.RawMessage, error) {
	b.next++
	id := b.next
	if err := websocket.JSON.Send(b.ws, map[string]any{"id": id, "method": method, "params": params}); err != nil {
		return nil, err
	}
	_ = b.ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		var msg struct {
			ID     int             `json:"id"`
			Result json.RawMessage `json:"result"`
			Error  *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := websocket.JSON.Receive(b.ws, &msg); err != nil {
			return nil, err
		}
		if msg.ID != id {
			continue
		}
		if msg.Error != nil {
			return nil, fmt.Errorf("%s: %s", method, msg.Error.Message)
		}
		return msg.Result, nil
	}
}

// eval runs a JavaScript expression in the page (awaiting a promise) and returns its
// value.
func (b *browser) eval(expr string) (any, error) {
	raw, err := b.call("Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true, "awaitPromise": true})
	if err != nil {
		return nil, err
	}
	var res struct {
		Result struct {
			Value any `json:"value"`
		} `json:"result"`
		Exception *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		return nil, err
	}
	if res.Exception != nil {
		return nil, fmt.Errorf("%s: %s %s", expr, res.Exception.Text, res.Exception.Exception.Description)
	}
	return res.Result.Value, nil
}

// do runs a statement in the page and fails the test if it throws.
func (b *browser) do(js string) {
	b.t.Helper()
	if _, err := b.eval("(() => {" + js + "; return true})()"); err != nil {
		b.t.Fatal(err)
	}
}

// waitFor polls a JavaScript condition until it is true; on timeout it fails with
// the page's status line, which says what went wrong.
func (b *browser) waitFor(what, cond string) {
	b.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		// A condition that throws (the element is not there yet) is not met yet.
		v, err := b.eval("(() => { try { return !!(" + cond + ") } catch (e) { return false } })()")
		if err != nil {
			b.t.Fatal(err)
		}
		if v == true {
			return
		}
		if time.Now().After(deadline) {
			flash, _ := b.eval(`document.querySelector("#flash") && document.querySelector("#flash").textContent`)
			b.t.Fatalf("waiting for %s (%s): page says %q", what, cond, flash)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (b *browser) navigate(url string) {
	b.t.Helper()
	if _, err := b.call("Page.navigate", map[string]any{"url": url}); err != nil {
		b.t.Fatal(err)
	}
}

// recordCSPViolations makes every page loaded from now on keep what its
// Content-Security-Policy blocks (an inline script or style, a third-party asset).
func (b *browser) recordCSPViolations() {
	b.t.Helper()
	if _, err := b.call("Page.enable", map[string]any{}); err != nil {
		b.t.Fatal(err)
	}
	if _, err := b.call("Page.addScriptToEvaluateOnNewDocument", map[string]any{"source": `
		window.cspViolations = [];
		document.addEventListener("securitypolicyviolation", e => window.cspViolations.push(e.violatedDirective + " " + e.blockedURI));`}); err != nil {
		b.t.Fatal(err)
	}
}

// checkNoCSPViolations fails the test if the page's policy blocked anything since it
// was loaded.
func (b *browser) checkNoCSPViolations() {
	b.t.Helper()
	if v, err := b.eval(`window.cspViolations.join("; ")`); err != nil || v != "" {
		b.t.Errorf("the Content-Security-Policy blocked: %v %v", v, err)
	}
}
