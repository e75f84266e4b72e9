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

	"github.com/shopcast/shopcast/cues"
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
	// Every listener on a free port or off: the RTSP UDP ports default to
	// :8000/:8001, which a shopcast in a parallel test may hold.
	cmd := exec.Command(bin, "-http", s.HTTP, "-rtmp", s.RTMP, "-rtsp", freePort(t),
		"-rtsp_udp_rtp=", "-rtsp_udp_rtcp=")
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
		t.Log("the binary does not serve /sdk/shopcast-cues.js yet; the harness serves cues.SDK")
		mux.Handle("GET /sdk/", http.FileServerFS(cues.SDK))
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

// partClock follows a media playlist the way an LL-HLS player does, with
// blocking reloads for the next part, and records when each new part
// became available. A gap longer than hls.js's blocking-reload timeout
// (max(3 x PART-TARGET, 0.8 x TARGETDURATION)) is a stall of the publisher
// or the packager, not of the page; the browser test reports the gaps so
// that a failure says which side stalled.
type partClock struct {
	mu     sync.Mutex
	last   time.Time
	gaps   []time.Duration // between consecutive new parts
	errors int
}

// startPartClock follows playlistURL until the test ends.
func startPartClock(t *testing.T, playlistURL string) *partClock {
	t.Helper()
	c := &partClock{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		msn, part := int64(-1), int64(-1)
		for ctx.Err() == nil {
			u := playlistURL
			if msn >= 0 {
				u += fmt.Sprintf("?_HLS_msn=%d&_HLS_part=%d", msn, part)
			}
			body, err := get(ctx, u)
			if err != nil {
				c.mu.Lock()
				c.errors++
				c.mu.Unlock()
				select {
				case <-ctx.Done():
				case <-time.After(100 * time.Millisecond):
				}
				continue
			}
			lastMSN, lastPart, complete, ok := lastPartOf(body)
			if !ok {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			now := time.Now()
			c.mu.Lock()
			if !c.last.IsZero() {
				c.gaps = append(c.gaps, now.Sub(c.last))
			}
			c.last = now
			c.mu.Unlock()
			msn, part = lastMSN, lastPart+1
			if complete {
				msn, part = lastMSN+1, 0
			}
		}
	}()
	return c
}

// summary describes the gaps between parts: their count, the longest, and
// how many exceeded over.
func (c *partClock) summary(over time.Duration) (n int, longest time.Duration, slow int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, g := range c.gaps {
		longest = max(longest, g)
		if g > over {
			slow++
		}
	}
	return len(c.gaps), longest, slow
}

func get(ctx context.Context, u string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return string(b), nil
}

// lastPartOf returns the newest part of a media playlist: its segment's
// media sequence number, its index there, and whether that segment is
// complete (listed with EXTINF).
func lastPartOf(playlist string) (msn, part int64, complete, ok bool) {
	seq := int64(-1)
	var segs, parts int64
	for _, line := range strings.Split(playlist, "\n") {
		switch {
		case strings.HasPrefix(line, "#EXT-X-MEDIA-SEQUENCE:"):
			_, _ = fmt.Sscan(strings.TrimPrefix(line, "#EXT-X-MEDIA-SEQUENCE:"), &seq)
		case strings.HasPrefix(line, "#EXT-X-PART:"):
			parts++
		case strings.HasPrefix(line, "#EXTINF:"):
			segs++
			part, complete = parts-1, parts > 0
			parts = 0
		}
	}
	if seq < 0 {
		return 0, 0, false, false
	}
	if parts > 0 {
		return seq + segs, parts - 1, false, true
	}
	if !complete {
		return 0, 0, false, false
	}
	return seq + segs - 1, part, true, true
}
