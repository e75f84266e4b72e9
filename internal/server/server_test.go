package server_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shopcast/shopcast/internal/server"
)

func loopback(t *testing.T) server.Config {
	cfg := server.Defaults()
	cfg.HTTP, cfg.RTMP, cfg.RTSP = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.RTSPUDPRTP, cfg.RTSPUDPRTCP = "", ""
	cfg.CueStore = t.TempDir() + "/cues.db"
	return cfg
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// TestServersSideBySide runs two servers in one process, as the cluster
// tests will: each binds its own ports (metrics on a port of their own for
// the second), serves /readyz, and shuts down on its context, releasing
// its ports.
func TestServersSideBySide(t *testing.T) {
	var addrs []server.Addrs
	var stops []func() error
	for i := range 2 {
		cfg := loopback(t)
		if i == 1 {
			cfg.MetricsAddr = "127.0.0.1:0"
		}
		srv, err := server.New(cfg, discard())
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- srv.Run(ctx) }()
		stops = append(stops, func() error {
			cancel()
			select {
			case err := <-done:
				return err
			case <-time.After(15 * time.Second):
				t.Fatal("Run did not return after its context ended")
				return nil
			}
		})
		addrs = append(addrs, srv.Addrs())
	}
	if addrs[0].Metrics != nil || addrs[1].Metrics == nil {
		t.Errorf("metrics addresses %v, %v", addrs[0].Metrics, addrs[1].Metrics)
	}
	for i, a := range addrs {
		for _, u := range []string{"http://" + a.HTTP.String() + "/readyz", "http://" + a.HTTP.String() + "/healthz"} {
			resp, err := http.Get(u)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("server %d: GET %s: %d", i, u, resp.StatusCode)
			}
		}
	}
	if addrs[0].HTTP.String() == addrs[1].HTTP.String() || addrs[0].RTMP.String() == addrs[1].RTMP.String() {
		t.Fatalf("two servers share a port: %v %v", addrs[0], addrs[1])
	}
	for i, stop := range stops {
		if err := stop(); err != nil {
			t.Errorf("server %d: Run: %v", i, err)
		}
	}
	for _, a := range addrs {
		for _, l := range []net.Addr{a.HTTP, a.RTMP, a.RTSP, a.Metrics} {
			if l == nil {
				continue
			}
			if c, err := net.Dial("tcp", l.String()); err == nil {
				c.Close()
				t.Errorf("%s still accepts connections after shutdown", l)
			}
		}
	}
}

// TestStartBindError: a busy port fails Start, which closes what it had
// already started (the cue store, the RTMP listener).
func TestStartBindError(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfg := loopback(t)
	cfg.HTTP = busy.Addr().String()
	cfg.RTMP = freeAddr(t)
	srv, err := server.New(cfg, discard())
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err == nil {
		t.Fatal("Start succeeded on a busy port")
	}
	ln, err := net.Listen("tcp", cfg.RTMP)
	if err != nil {
		t.Fatalf("RTMP port still held: %v", err)
	}
	ln.Close()
	// The store is closed: another server opens it at once (bbolt locks
	// the file).
	cfg.HTTP = "127.0.0.1:0"
	again, err := server.New(cfg, discard())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := again.Run(ctx); err != nil {
		t.Fatalf("Run on the same store: %v", err)
	}
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestNewChecksConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*server.Config)
		want string // in the error
		not  string // never in the error
	}{
		{"pull name", func(c *server.Config) { c.RTSPPull = map[string]string{"a/b": "rtsp://cam/x"} }, "rtsp_pull", ""},
		{"pull scheme", func(c *server.Config) { c.RTSPPull = map[string]string{"cam": "http://u:pw-9911@cam/x"} }, "rtsp:// or rtsps://", "pw-9911"},
		{"pull unparsable", func(c *server.Config) { c.RTSPPull = map[string]string{"cam": "rtsp://u:pw-9911@[::1/x"} }, "does not parse", "pw-9911"},
		{"pull host", func(c *server.Config) { c.RTSPPull = map[string]string{"cam": "rtsp:///x"} }, "no host", ""},
		{"publish key name", func(c *server.Config) { c.PublishKeys = map[string]string{"sk-4471": "a b"} }, "publish_keys", "sk-4471"},
		{"rtsp timeout", func(c *server.Config) { c.RTSPReadTimeout = 0 }, "rtsp_read_timeout", ""},
		{"part target", func(c *server.Config) { c.PartTarget = 3 * time.Second }, "part_target", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := loopback(t)
			tc.edit(&cfg)
			_, err := server.New(cfg, discard())
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.want) || (tc.not != "" && strings.Contains(err.Error(), tc.not)) {
				t.Errorf("error %q: want %q, never %q", err, tc.want, tc.not)
			}
		})
	}
	cfg := loopback(t)
	cfg.RTSPPull = map[string]string{"cam": "rtsps://u:p@cam.example:322/live"}
	if _, err := server.New(cfg, discard()); err != nil {
		t.Errorf("a valid rtsps pull: %v", err)
	}
}
