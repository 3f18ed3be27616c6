package gateway

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/kitshop/kitshop/pkg/httpjson"
)

// embeddedFiles are the files of a page, read once from the binary, by their path
// below the page's folder.
type embeddedFiles map[string]embeddedFile

type embeddedFile struct {
	content     []byte
	contentType string
	// etag is strong, a hash of the content: a browser revalidating a file it has
	// gets 304 until a new binary changes it.
	etag string
	// gzipped is the content gzipped, for a file embedded that way (name.gz), and
	// gzipETag its own hash: the two are different representations of the file.
	gzipped  []byte
	gzipETag string
}

// loadEmbedded reads every file below dir. A file whose kind has no content type
// here is an error, so that no answer goes out with a guessed type. A file name.gz
// is served as name, decompressed once here for clients that do not accept gzip.
func loadEmbedded(fsys fs.FS, dir string) (embeddedFiles, error) {
	root, err := fs.Sub(fsys, dir)
	if err != nil {
		return nil, err
	}
	files := embeddedFiles{}
	err = fs.WalkDir(root, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		raw, err := fs.ReadFile(root, name)
		if err != nil {
			return err
		}
		var file embeddedFile
		if served, ok := strings.CutSuffix(name, ".gz"); ok {
			name = served
			file.gzipped, file.gzipETag = raw, etagOf(raw)
			if file.content, err = gunzip(raw); err != nil {
				return fmt.Errorf("gateway: embedded file %s/%s.gz: %w", dir, name, err)
			}
		} else {
			file.content = raw
		}
		var ok bool
		if file.contentType, ok = contentTypeOf(name); !ok {
			return fmt.Errorf("gateway: embedded file %s/%s: no content type for its kind", dir, name)
		}
		if _, dup := files[name]; dup {
			return fmt.Errorf("gateway: embedded file %s/%s is there both plain and gzipped", dir, name)
		}
		file.etag = etagOf(file.content)
		files[name] = file
		return nil
	})
	return files, err
}

func etagOf(b []byte) string {
	sum := sha256.Sum256(b)
	return `"` + hex.EncodeToString(sum[:16]) + `"`
}

func gunzip(b []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(zr)
}

// contentTypeOf gives the type of the kinds of file pages are made of; files with no
// extension are licence texts (LICENSE, NOTICE).
func contentTypeOf(name string) (string, bool) {
	switch path.Ext(name) {
	case ".html":
		return "text/html; charset=utf-8", true
	case ".css":
		return "text/css; charset=utf-8", true
	case ".js":
		return "text/javascript; charset=utf-8", true
	case ".txt", "":
		return "text/plain; charset=utf-8", true
	}
	return "", false
}

// serve answers with one file (304 to a matching If-None-Match, no body to HEAD), or
// 404 not_found as JSON when there is no such file. Cache-Control: no-cache because
// the URLs carry no version: the browser asks every time, and a 304 is cheap. A file
// embedded gzipped goes out gzipped to a client that accepts it, with that
// representation's ETag, except to a Range request: ranges of the plain file are what
// a resumed download wants, and a multipart answer would not be gzip as a whole.
func (f embeddedFiles) serve(w http.ResponseWriter, r *http.Request, name string) {
	file, ok := f[name]
	if !ok {
		httpjson.NotFound().ServeHTTP(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Type", file.contentType)
	h.Set("Cache-Control", "no-cache")
	content, etag := file.content, file.etag
	if file.gzipped != nil {
		h.Add("Vary", "Accept-Encoding")
		if r.Header.Get("Range") == "" && acceptsGzip(r.Header.Values("Accept-Encoding")) {
			content, etag = file.gzipped, file.gzipETag
			w = gzipAnswer{w}
		}
	}
	h.Set("ETag", etag)
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(content))
}

// gzipAnswer marks the answer that carries the gzipped bytes (200) with
// Content-Encoding: gzip, and not a 304 or 412 ServeContent may make instead. Set
// before ServeContent, the header would keep it from sending Content-Length.
type gzipAnswer struct{ http.ResponseWriter }

func (w gzipAnswer) WriteHeader(code int) {
	if code == http.StatusOK {
		w.Header().Set("Content-Encoding", "gzip")
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w gzipAnswer) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// acceptsGzip reports whether Accept-Encoding values allow gzip: gzip (or x-gzip)
// with a weight above 0, or failing that * with one. No Accept-Encoding is identity
// only: RFC 9110 would allow any coding then, but clients that send none (curl
// without --compressed, scripts) are the ones that cannot decode. A weight that does
// not parse counts as 0.
func acceptsGzip(values []string) bool {
	named, wildcard := -1.0, -1.0 // the weights given; -1 when not given
	for _, v := range values {
		for _, item := range strings.Split(v, ",") {
			coding, params, _ := strings.Cut(item, ";")
			q := 1.0
			if k, val, ok := strings.Cut(params, "="); ok && strings.EqualFold(strings.TrimSpace(k), "q") {
				var err error
				if q, err = strconv.ParseFloat(strings.TrimSpace(val), 64); err != nil {
					q = 0
				}
			}
			switch strings.ToLower(strings.TrimSpace(coding)) {
			case "gzip", "x-gzip":
				named = max(named, q)
			case "*":
				wildcard = q
			}
		}
	}
	if named >= 0 {
		return named > 0
	}
	return wildcard > 0
}

// page serves a page made of embedded files: its index.html at path, the other files
// under prefix. Every answer has headers that keep a browser from running anything
// else in the page's name: its Content-Security-Policy, no content-type sniffing, no
// framing (X-Frame-Options for browsers without frame-ancestors), and no URL leaking
// to other sites in Referer.
type page struct {
	path   string
	prefix string
	policy string
	files  embeddedFiles
}

func (p page) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", p.policy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "strict-origin-when-cross-origin")
	if r.URL.Path == p.path {
		p.files.serve(w, r, "index.html")
		return
	}
	p.files.serve(w, r, strings.TrimPrefix(r.URL.Path, p.prefix))
}
