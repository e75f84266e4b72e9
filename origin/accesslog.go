package origin

import (
	"log/slog"
	"net/http"
	"time"
)

// logAccess runs next and logs one line for the request (the logger is at
// debug level).
func (s *Server) logAccess(w http.ResponseWriter, r *http.Request, next http.HandlerFunc) {
	log := s.log()
	sw := &statusWriter{ResponseWriter: w}
	start := time.Now()
	next(sw, r)
	// status 0: nothing was written, the client went away first.
	log.LogAttrs(r.Context(), slog.LevelDebug, "http",
		slog.String("remote", r.RemoteAddr),
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.Int("status", sw.status),
		slog.Duration("dur", time.Since(start)))
}

// statusWriter records the status a handler sends.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
