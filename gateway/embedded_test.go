package gateway

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
)

// TestPageFiles: the storefront and Swagger UI are served from the binary with their
// type, their page's Content-Security-Policy and an ETag a browser revalidates with;
// what is not one of their files is 404 in the JSON error convention.
func TestPageFiles(t *testing.T) {
	gw := startGateway(t, withUpstreams(testOptions(newTestKeys(t).verifier), nil))
	etagOf := func(path string) map[string]string {
		resp, _ := call(t, "GET", gw.URL+path, nil, nil)
		if resp.Header.Get("ETag") == "" {
			t.Fatalf("GET %s: no ETag", path)
		}
		return map[string]string{"If-None-Match": resp.Header.Get("ETag")}
	}
	file := func(name string) string {
		b, err := docsFiles.ReadFile(name)
		if errors.Is(err, fs.ErrNotExist) {
			b, err = docsFiles.ReadFile(name + ".gz")
			if err == nil {
				b, err = gunzip(b)
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	const (
		html = "text/html; charset=utf-8"
		js   = "text/javascript; charset=utf-8"
		css  = "text/css; charset=utf-8"
		text = "text/plain; charset=utf-8"
		json = "application/json; charset=utf-8"
	)
	tests := []struct {
		name, method, path string
		header             map[string]string
		status             int
		contentType        string
		policy             string // "" for an answer that is no page's
		body               string // the whole body, when code is ""
		code               string // the error code of a JSON error body
		redirect           string // the Location of a redirect (which call does not follow)
	}{
		{"docs page", "GET", "/docs", nil, 200, html, docsPolicy, file("docs/index.html"), "", ""},
		{"docs start-up script", "GET", "/docs/docs.js", nil, 200, js, docsPolicy, file("docs/docs.js"), "", ""},
		{"swagger-ui bundle", "GET", "/docs/swagger-ui/swagger-ui-bundle.js", nil, 200, js, docsPolicy, file("docs/swagger-ui/swagger-ui-bundle.js"), "", ""},
		{"swagger-ui style", "GET", "/docs/swagger-ui/swagger-ui.css", nil, 200, css, docsPolicy, file("docs/swagger-ui/swagger-ui.css"), "", ""},
		{"swagger-ui licence", "GET", "/docs/swagger-ui/LICENSE", nil, 200, text, docsPolicy, file("docs/swagger-ui/LICENSE"), "", ""},
		{"bundled licences", "GET", "/docs/swagger-ui/swagger-ui-bundle.js.LICENSE.txt", nil, 200, text, docsPolicy, file("docs/swagger-ui/swagger-ui-bundle.js.LICENSE.txt"), "", ""},
		{"HEAD of the docs page", "HEAD", "/docs", nil, 200, html, docsPolicy, "", "", ""},
		{"HEAD of the bundle", "HEAD", "/docs/swagger-ui/swagger-ui-bundle.js", nil, 200, js, docsPolicy, "", "", ""},
		{"docs page revalidated", "GET", "/docs", etagOf("/docs"), 304, "", docsPolicy, "", "", ""},
		{"bundle revalidated", "GET", "/docs/swagger-ui/swagger-ui-bundle.js", etagOf("/docs/swagger-ui/swagger-ui-bundle.js"), 304, "", docsPolicy, "", "", ""},
		{"another file's ETag", "GET", "/docs/docs.js", etagOf("/docs"), 200, js, docsPolicy, file("docs/docs.js"), "", ""},
		{"trailing slash", "GET", "/docs/", nil, 301, "", "", "", "", "/docs"},
		{"unknown asset", "GET", "/docs/swagger-ui/swagger-ui.js", nil, 404, json, docsPolicy, "", "not_found", ""},
		{"a folder", "GET", "/docs/swagger-ui/", nil, 404, json, docsPolicy, "", "not_found", ""},
		{"the fetch script is not served", "GET", "/docs/swagger-ui/fetch.sh", nil, 404, json, docsPolicy, "", "not_found", ""},
		{"POST to the docs page", "POST", "/docs", nil, 405, json, "", "", "method_not_allowed", ""},
		{"POST to an asset", "POST", "/docs/docs.js", nil, 405, json, "", "", "method_not_allowed", ""},
		{"storefront page revalidated", "GET", "/", etagOf("/"), 304, "", storefrontPolicy, "", "", ""},
		{"storefront script revalidated", "GET", "/static/app.js", etagOf("/static/app.js"), 304, "", storefrontPolicy, "", "", ""},
		{"storefront unknown file", "GET", "/static/nope.js", nil, 404, json, storefrontPolicy, "", "not_found", ""},
		{"storefront folder", "GET", "/static/", nil, 404, json, storefrontPolicy, "", "not_found", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := call(t, tt.method, gw.URL+tt.path, nil, tt.header)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %.200s", resp.StatusCode, tt.status, body)
			}
			if got := resp.Header.Get("Content-Type"); tt.contentType != "" && got != tt.contentType {
				t.Errorf("Content-Type %q, want %q", got, tt.contentType)
			}
			if got := resp.Header.Get("Content-Security-Policy"); got != tt.policy {
				t.Errorf("Content-Security-Policy %q, want %q", got, tt.policy)
			}
			redirect := ""
			if resp.StatusCode == http.StatusMovedPermanently {
				redirect = resp.Header.Get("Location")
			}
			if redirect != tt.redirect {
				t.Errorf("redirected to %q, want %q", redirect, tt.redirect)
			}
			switch {
			case tt.code != "":
				if got := errorCode(t, body); got != tt.code {
					t.Errorf("code %q, want %q", got, tt.code)
				}
			case tt.status == 200 || tt.status == 304:
				if body != tt.body {
					t.Errorf("body of %d bytes, want the %d of the file", len(body), len(tt.body))
				}
				if resp.Header.Get("ETag") == "" || resp.Header.Get("Cache-Control") != "no-cache" {
					t.Errorf("ETag %q, Cache-Control %q: want an ETag and no-cache", resp.Header.Get("ETag"), resp.Header.Get("Cache-Control"))
				}
			}
			if tt.method == "HEAD" {
				// Go's client asks for gzip on a GET, not on a HEAD: this GET asks as the
				// HEAD did.
				get, full := call(t, "GET", gw.URL+tt.path, nil, map[string]string{"Accept-Encoding": "identity"})
				if resp.Header.Get("Content-Length") != strconv.Itoa(len(full)) || resp.Header.Get("ETag") != get.Header.Get("ETag") {
					t.Errorf("HEAD: Content-Length %q, ETag %q; GET has %d bytes, ETag %q",
						resp.Header.Get("Content-Length"), resp.Header.Get("ETag"), len(full), get.Header.Get("ETag"))
				}
			}
		})
	}
}

// TestLoadEmbedded: a file of a kind with no content type here is refused when the
// gateway starts, rather than served with a guessed type.
func TestLoadEmbedded(t *testing.T) {
	tests := []struct {
		name  string
		files fstest.MapFS
		want  []string // the names loaded; nil for an error
	}{
		{"page files", fstest.MapFS{"p/index.html": {}, "p/a/b.js": {}, "p/c.css": {}, "p/LICENSE": {}}, []string{"index.html", "a/b.js", "c.css", "LICENSE"}},
		{"an image", fstest.MapFS{"p/index.html": {}, "p/logo.png": {}}, nil},
		{"a gzipped script", fstest.MapFS{"p/index.html": {}, "p/a.js.gz": {Data: gzipped(t, "x")}}, []string{"index.html", "a.js"}},
		{"a gzipped image", fstest.MapFS{"p/logo.png.gz": {Data: gzipped(t, "x")}}, nil},
		{"not gzip", fstest.MapFS{"p/a.js.gz": {Data: []byte("x")}}, nil},
		{"plain and gzipped", fstest.MapFS{"p/a.js": {}, "p/a.js.gz": {Data: gzipped(t, "x")}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files, err := loadEmbedded(tt.files, "p")
			if tt.want == nil {
				if err == nil {
					t.Fatalf("loaded %d files, want an error", len(files))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(files) != len(tt.want) {
				t.Errorf("loaded %d files, want %d", len(files), len(tt.want))
			}
			for _, name := range tt.want {
				if _, ok := files[name]; !ok {
					t.Errorf("%s not loaded", name)
				}
			}
		})
	}
}

func gzipped(t *testing.T, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestGzippedFile: the Swagger UI bundle, embedded gzipped, goes out gzipped to a
// client that accepts gzip and plain to one that does not, the same bytes either way,
// with the same type, each representation with its own ETag, and Vary: Accept-Encoding
// on both so that no cache hands one client the other's.
func TestGzippedFile(t *testing.T) {
	gw := startGateway(t, withUpstreams(testOptions(newTestKeys(t).verifier), nil))
	const path = "/docs/swagger-ui/swagger-ui-bundle.js"
	raw, err := docsFiles.ReadFile("docs/swagger-ui/swagger-ui-bundle.js.gz")
	if err != nil {
		t.Fatal(err)
	}
	plain, err := gunzip(raw)
	if err != nil {
		t.Fatal(err)
	}
	plainETag, gzipETag := etagOf(plain), etagOf(raw)
	// The client sends exactly the rows' headers: no Accept-Encoding of its own, no
	// decompressing behind the test's back.
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	t.Cleanup(client.CloseIdleConnections)
	tests := []struct {
		name, method string
		header       map[string]string
		status       int
		encoding     string // the Content-Encoding wanted
		etag         string
		body         []byte // after decoding; nil for none
	}{
		{"a browser", "GET", map[string]string{"Accept-Encoding": "gzip, deflate, br, zstd"}, 200, "gzip", gzipETag, plain},
		{"gzip only", "GET", map[string]string{"Accept-Encoding": "gzip"}, 200, "gzip", gzipETag, plain},
		{"any coding", "GET", map[string]string{"Accept-Encoding": "*"}, 200, "gzip", gzipETag, plain},
		{"no Accept-Encoding", "GET", nil, 200, "", plainETag, plain},
		{"identity", "GET", map[string]string{"Accept-Encoding": "identity"}, 200, "", plainETag, plain},
		{"gzip refused", "GET", map[string]string{"Accept-Encoding": "gzip;q=0, deflate"}, 200, "", plainETag, plain},
		{"codings it does not have", "GET", map[string]string{"Accept-Encoding": "br, zstd"}, 200, "", plainETag, plain},
		{"HEAD, gzip", "HEAD", map[string]string{"Accept-Encoding": "gzip"}, 200, "gzip", gzipETag, nil},
		{"HEAD, plain", "HEAD", nil, 200, "", plainETag, nil},
		{"gzip revalidated", "GET", map[string]string{"Accept-Encoding": "gzip", "If-None-Match": gzipETag}, 304, "", gzipETag, nil},
		{"plain revalidated", "GET", map[string]string{"If-None-Match": plainETag}, 304, "", plainETag, nil},
		{"gzip asked with the plain ETag", "GET", map[string]string{"Accept-Encoding": "gzip", "If-None-Match": plainETag}, 200, "gzip", gzipETag, plain},
		{"a range is of the plain file", "GET", map[string]string{"Accept-Encoding": "gzip", "Range": "bytes=0-99"}, 206, "", plainETag, plain[:100]},
		{"an If-Match that fails", "GET", map[string]string{"Accept-Encoding": "gzip", "If-Match": plainETag}, 412, "", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, gw.URL+path, nil)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %.200s", resp.StatusCode, tt.status, body)
			}
			if got := resp.Header.Get("Content-Encoding"); got != tt.encoding {
				t.Errorf("Content-Encoding %q, want %q", got, tt.encoding)
			}
			if got := resp.Header.Get("ETag"); tt.etag != "" && got != tt.etag {
				t.Errorf("ETag %s, want %s", got, tt.etag)
			}
			if got := resp.Header.Get("Vary"); got != "Accept-Encoding" {
				t.Errorf("Vary %q, want Accept-Encoding", got)
			}
			if resp.StatusCode == 304 || resp.StatusCode == 412 {
				return
			}
			if got := resp.Header.Get("Content-Type"); got != "text/javascript; charset=utf-8" {
				t.Errorf("Content-Type %q, want text/javascript; charset=utf-8", got)
			}
			sent := len(plain)
			if tt.encoding == "gzip" {
				sent = len(raw)
			}
			if tt.status == 206 {
				sent = len(tt.body)
			}
			if got := resp.Header.Get("Content-Length"); got != strconv.Itoa(sent) {
				t.Errorf("Content-Length %q, want %d", got, sent)
			}
			if tt.encoding == "gzip" && tt.method != "HEAD" {
				if body, err = gunzip(body); err != nil {
					t.Fatalf("decompressing the body: %v", err)
				}
			}
			if !bytes.Equal(body, tt.body) {
				t.Errorf("body of %d bytes, want %d bytes of the bundle", len(body), len(tt.body))
			}
		})
	}
}

// TestAcceptsGzip: the Accept-Encoding values that let a gzipped file go out gzipped.
func TestAcceptsGzip(t *testing.T) {
	tests := []struct {
		values []string
		want   bool
	}{
		{nil, false},
		{[]string{""}, false},
		{[]string{"gzip"}, true},
		{[]string{"GZip"}, true},
		{[]string{"x-gzip"}, true},
		{[]string{"deflate, gzip;q=0.5"}, true},
		{[]string{"gzip ; q=0.001"}, true},
		{[]string{"gzip;q=0"}, false},
		{[]string{"gzip;q=0.000"}, false},
		{[]string{"gzip;q=nonsense"}, false},
		{[]string{"identity"}, false},
		{[]string{"br, zstd"}, false},
		{[]string{"*"}, true},
		{[]string{"*;q=0"}, false},
		{[]string{"*, gzip;q=0"}, false},
		{[]string{"gzip;q=0, *"}, false},
		{[]string{"br", "gzip"}, true},
	}
	for _, tt := range tests {
		if got := acceptsGzip(tt.values); got != tt.want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", tt.values, got, tt.want)
		}
	}
}

// TestVendoredSwaggerUI: what /docs serves of swagger-ui-dist, the bundle
// decompressed, is what SHA256SUMS says npm serves (swagger-ui/fetch.sh checks that
// with npm; this checks the commit without it).
func TestVendoredSwaggerUI(t *testing.T) {
	sums, err := os.Open("docs/swagger-ui/SHA256SUMS")
	if err != nil {
		t.Fatal(err)
	}
	defer sums.Close()
	files, err := loadEmbedded(docsFiles, "docs")
	if err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(sums)
	n := 0
	for lines.Scan() {
		sum, name, ok := strings.Cut(lines.Text(), "  ")
		if !ok {
			t.Fatalf("SHA256SUMS: %q is not a sum and a name", lines.Text())
		}
		n++
		file, ok := files["swagger-ui/"+name]
		if !ok {
			t.Errorf("%s: not served", name)
			continue
		}
		if got := sha256.Sum256(file.content); hex.EncodeToString(got[:]) != sum {
			t.Errorf("%s: sha256 %x, want %s", name, got, sum)
		}
	}
	if err := lines.Err(); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Error("SHA256SUMS lists no file")
	}
}
