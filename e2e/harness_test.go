package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopcast/shopcast/overlay"
	"github.com/shopcast/shopcast/web"
)

// freePort returns a loopback port nobody listens on now.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// buildShopcast builds ./cmd/shopcast into a temp dir.
func buildShopcast(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "shopcast")
	cmd := exec.Command("go", "build", "-o", bin, "../cmd/shopcast")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// syncBuffer collects a process's output for the log of a failed test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// shopcast is the binary under test.
type shopcast struct {
	HTTP, RTMP string // host:port
	out        *syncBuffer
}

func (s *shopcast) url(path string) string { return "http://" + s.HTTP + path }

// startShopcast runs bin on free loopback ports, from a temp dir (the cue
// store is a relative path), and waits for /healthz.
func startShopcast(t *testing.T, bin string) *shopcast {
	t.Helper()
	s := &shopcast{HTTP: freePort(t), RTMP: freePort(t), out: &syncBuffer{}}
	cmd := exec.Command(bin, "-http", s.HTTP, "-rtmp", s.RTMP, "-rtsp", freePort(t))
	cmd.Dir = t.TempDir()
	cmd.Stdout, cmd.Stderr = s.out, s.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("shopcast output:\n%s", tail(s.out.String(), 6000))
		}
	})
	waitUntil(t, 15*time.Second, "shopcast /healthz", func() bool {
		code, _ := status(http.MethodGet, s.url("/healthz"))
		return code == http.StatusOK
	})
	return s
}

// startFFmpeg publishes a test pattern and a tone over RTMP in real time,
// with OBS's settings (x264 zerolatency, 1 s GOP, AAC 48 kHz stereo).
func startFFmpeg(t *testing.T, rtmpURL string, seconds int) {
	t.Helper()
	out := &syncBuffer{}
	cmd := exec.Command("ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "warning",
		"-re", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", fmt.Sprint(seconds),
		"-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-profile:v", "high",
		"-pix_fmt", "yuv420p", "-g", "30", "-keyint_min", "30", "-sc_threshold", "0", "-b:v", "800k",
		"-c:a", "aac", "-b:a", "96k", "-ar", "48000", "-ac", "2", "-f", "flv", rtmpURL)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("ffmpeg output:\n%s", tail(out.String(), 3000))
		}
	})
}

// pagesBase returns where the browser finds the pages: the binary itself
// once it serves /watch/{name}, else a harness that serves web.New and
// forwards the rest to the binary.
func pagesBase(t *testing.T, s *shopcast, name string) string {
	t.Helper()
	if code, _ := status(http.MethodGet, s.url("/watch/"+name)); code == http.StatusOK {
		t.Log("pages: served by the shopcast binary")
		return s.url("")
	}
	t.Log("pages: the binary has no /watch/{name} yet; serving web.New from a harness that proxies /live/, /api/ and /sdk/ to the binary")
	target, _ := url.Parse(s.url(""))
	// Rewrite (not Director) adds no X-Forwarded-For: the cue API answers
	// loopback clients that are not behind a proxy when it has no token.
	proxy := &httputil.ReverseProxy{
		Rewrite:       func(pr *httputil.ProxyRequest) { pr.SetURL(target) },
		FlushInterval: -1,
	}
	mux := http.NewServeMux()
	web.New(web.Config{
		Streams: func() []string { return []string{name} },
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
	}).Register(mux.Handle)
	mux.Handle("/live/", proxy)
	mux.Handle("/api/", proxy)
	if code, _ := status(http.MethodGet, s.url("/sdk/shopcast-cues.js")); code == http.StatusOK {
		mux.Handle("/sdk/", proxy)
	} else {
		t.Log("the binary does not serve /sdk/shopcast-cues.js yet; the harness serves overlay.SDK")
		mux.Handle("GET /sdk/", http.FileServerFS(overlay.SDK))
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

func status(method, u string) (int, error) {
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// waitUntil polls cond every 100 ms until it holds or the deadline passes.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out after %v waiting for %s", d, what)
		case <-tick.C:
		}
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

func jsString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\n", `\n`).Replace(s) + "'"
}
