package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// storefront loads the storefront at url in headless Chromium (the Debian package),
// gives its script time to fetch the catalogue, and wants the seeded product name
// product in the page as rendered; then it saves a screenshot to png. An https:// url
// is served with the certificate whose public key is spki (base64 of its SHA-256):
// Chromium, which does not know the demo CA, takes that one key and no other.
func storefront(ctx context.Context, url, spki, product, png string) error {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		return fmt.Errorf("chromium (Debian package chromium): %w", err)
	}
	run := func(args ...string) ([]byte, error) {
		// A fresh profile each time, never the user's; Chromium downloads nothing.
		dir, err := os.MkdirTemp("", "kitshop-stacktest-chromium-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		args = append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
			"--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
			"--hide-scrollbars", "--user-data-dir=" + dir, "--window-size=1280,960", "--virtual-time-budget=10000"}, args...)
		if spki != "" {
			args = append(args, "--ignore-certificate-errors-spki-list="+spki)
		}
		cmd := exec.CommandContext(ctx, chromium, append(args, url)...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("chromium: %w: %s", err, tail(stderr.String(), 5))
		}
		return out, nil
	}
	dom, err := run("--dump-dom")
	if err != nil {
		return err
	}
	if !strings.Contains(string(dom), product) {
		return fmt.Errorf("the storefront at %s, as Chromium rendered it, does not show %q (%d bytes of page)", url, product, len(dom))
	}
	if _, err := run("--screenshot=" + png); err != nil {
		return err
	}
	if info, err := os.Stat(png); err != nil || info.Size() == 0 {
		return fmt.Errorf("chromium wrote no screenshot to %s", png)
	}
	return nil
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// leafSPKI is the SPKI pin of the certificate the API's server presents, checked
// against the API's roots: base64 of the SHA-256 of its public key.
func (a *api) leafSPKI(ctx context.Context) (string, error) {
	r, err := a.call(ctx, "GET", "/health", nil)
	if err != nil {
		return "", err
	}
	if r.tls == nil || len(r.tls.PeerCertificates) == 0 {
		return "", fmt.Errorf("%s: no TLS certificate", a.base)
	}
	sum := sha256.Sum256(r.tls.PeerCertificates[0].RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:]), nil
}
