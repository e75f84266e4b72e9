package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
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

	mu   sync.Mutex
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
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
	done := make(chan struct{})
	s.mu.Lock()
	s.srv, s.ln, s.done = srv, ln, done
	s.mu.Unlock()
	go func() {
		defer close(done)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "err", err)
		}
	}()
	return nil
}

// Addr returns the bound address, or nil before Start.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Shutdown stops the server, waiting for scrapes in flight until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	srv, done := s.srv, s.done
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	err := srv.Shutdown(ctx)
	if err != nil {
		_ = srv.Close()
	}
	<-done
	return err
}

func orDefault(v, def time.Duration) time.Duration {
	if v <= 0 {
		return def
	}
	return v
}
