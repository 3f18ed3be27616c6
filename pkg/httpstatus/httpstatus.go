// Package httpstatus lets HTTP middleware see the status its handler answered with,
// to log, count or judge the answer.
package httpstatus

import "net/http"

// Recorder is a ResponseWriter that remembers the first status written: 200 when the
// handler wrote a body without a header, or wrote nothing at all.
type Recorder struct {
	http.ResponseWriter
	Status  int
	written bool
}

// NewRecorder wraps w.
func NewRecorder(w http.ResponseWriter) *Recorder {
	return &Recorder{ResponseWriter: w, Status: http.StatusOK}
}

// WriteHeader records code if it is the first status written.
func (r *Recorder) WriteHeader(code int) {
	if !r.written {
		r.Status, r.written = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *Recorder) Write(b []byte) (int, error) {
	r.written = true
	return r.ResponseWriter.Write(b)
}

// Written reports whether the answer has begun (a status or a body written): from
// then on it can no longer be replaced by another.
func (r *Recorder) Written() bool { return r.written }

// Unwrap gives http.ResponseController the writer underneath (for Flush, deadlines).
func (r *Recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
