package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/shopcast/shopcast/internal/httpserve"
)

// Server serves GET /metrics (and /readyz, /healthz when given) on a port
// of its own, for deployments that keep metrics off the public HTTP port.
type Server struct {
	// Address is the TCP listen address, such as "127.0.0.1:9100". Required.
	Address string
	// Metrics is served at /metrics. Required.
	Metrics *Metrics
	// Ready, when set, is served at /readyz. It defaults to nil.
	Ready *Ready
	// ReadHeaderTimeout bounds reading a request's headers. It defaults to 5s.
	ReadHeaderTimeout time.Duration
	// WriteTimeout bounds writing a response. It defaults to 30s.
	WriteTimeout time.Duration
	// Logger receives serve errors. It defaults to discarding them.
	Logger *slog.Logger

	run httpserve.Runner
}

// Start binds Address and serves in the background.
func (s *Server) Start() error {
	if s.Metrics == nil {
		return errors.New("telemetry: Metrics is nil")
	}
	log := s.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s.Metrics.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write([]byte("ok"))
	})
	if s.Ready != nil {
		mux.Handle("GET /readyz", s.Ready)
	}
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: orDefault(s.ReadHeaderTimeout, 5*time.Second),
		// Scrapes and probes are GETs without a body: the whole request is
		// read within the header timeout.
		ReadTimeout:  orDefault(s.ReadHeaderTimeout, 5*time.Second),
		WriteTimeout: orDefault(s.WriteTimeout, 30*time.Second),
		IdleTimeout:  2 * time.Minute,
		ErrorLog:     slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	ln, err := net.Listen("tcp", s.Address)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	s.run.Serve(srv, ln, srv.Serve, log, "metrics server")
	return nil
}

// Addr returns the bound address, or nil before Start.
func (s *Server) Addr() net.Addr { return s.run.Addr() }

// Shutdown stops the server, waiting for scrapes in flight until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error { return s.run.Shutdown(ctx) }

func orDefault(v, def time.Duration) time.Duration {
	if v <= 0 {
		return def
	}
	return v
}
