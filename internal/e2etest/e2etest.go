// Package e2etest starts shopcast servers (internal/server, the wiring the
// binary runs) inside a test process, on loopback ports, for the
// end-to-end tests under e2e/. Each server has its own ports, cue store and
// log, so a test may start several (a camera relay and a puller, a
// cluster).
package e2etest

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/shopcast/shopcast/internal/server"
)

// Config returns the server defaults with every listener on a free
// loopback port, RTSP's fixed UDP ports off (a server in a parallel test
// may hold them), and the cue store in the test's temp dir.
func Config(t testing.TB) server.Config {
	cfg := server.Defaults()
	cfg.HTTP, cfg.RTMP, cfg.RTSP = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.RTSPUDPRTP, cfg.RTSPUDPRTCP = "", ""
	cfg.CueStore = t.TempDir() + "/cues.db"
	return cfg
}

// Server is a shopcast server started by Start.
type Server struct {
	HTTP  string // http://127.0.0.1:PORT
	RTMP  string // rtmp://127.0.0.1:PORT
	RTSP  string // rtsp://127.0.0.1:PORT
	Addrs server.Addrs
	// Log holds everything the server logged.
	Log *Buffer
	// Server is the server itself, for tests that look inside.
	Server *server.Server

	stopOnce sync.Once
	stopErr  error
	cancel   context.CancelFunc
	done     chan error
}

// Start starts a server with cfg, logging at info level, and stops it when
// the test ends (reporting a shutdown that fails or hangs, and showing the
// log of a failed test).
func Start(t testing.TB, cfg server.Config) *Server {
	t.Helper()
	return start(t, cfg, slog.LevelInfo)
}

// StartDebug is Start logging at debug level, which adds an access log
// line per HTTP request.
func StartDebug(t testing.TB, cfg server.Config) *Server {
	t.Helper()
	return start(t, cfg, slog.LevelDebug)
}

func start(t testing.TB, cfg server.Config, level slog.Level) *Server {
	t.Helper()
	s := &Server{Log: &Buffer{}, done: make(chan error, 1)}
	log := slog.New(slog.NewTextHandler(s.Log, &slog.HandlerOptions{Level: level}))
	srv, err := server.New(cfg, log)
	if err != nil {
		t.Fatalf("shopcast config: %v", err)
	}
	if err := srv.Start(); err != nil {
		t.Fatalf("shopcast did not start: %v\n%s", err, s.Log)
	}
	s.Server, s.Addrs = srv, srv.Addrs()
	s.HTTP = "http://" + s.Addrs.HTTP.String()
	s.RTMP = "rtmp://" + s.Addrs.RTMP.String()
	s.RTSP = "rtsp://" + s.Addrs.RTSP.String()
	var ctx context.Context
	ctx, s.cancel = context.WithCancel(context.Background())
	go func() { s.done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if t.Failed() {
			t.Logf("server log:\n%s", s.Log)
		}
	})
	return s
}

// Stop shuts the server down gracefully and returns Run's error; later
// calls return the same.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		s.cancel()
		select {
		case s.stopErr = <-s.done:
		case <-time.After(20 * time.Second):
			s.stopErr = errors.New("shopcast did not shut down within 20s")
		}
	})
	return s.stopErr
}

// FreeAddr returns a loopback address nobody listens on now, for a
// listener a test must know before it starts (a restart on the same port).
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Buffer collects a server's or a process's output, safe for concurrent
// writers and readers.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
