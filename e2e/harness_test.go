package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopcast/shopcast/internal/e2etest"
)

// shopcast is the server under test, started in this process by
// internal/e2etest with the wiring the binary runs.
type shopcast struct {
	HTTP, RTMP string // host:port
}

func (s *shopcast) url(path string) string { return "http://" + s.HTTP + path }

// startShopcast starts shopcast with its defaults on free loopback ports.
func startShopcast(t *testing.T) *shopcast {
	t.Helper()
	srv := e2etest.Start(t, e2etest.Config(t))
	return &shopcast{HTTP: srv.Addrs.HTTP.String(), RTMP: srv.Addrs.RTMP.String()}
}

// startStream starts shopcast, has ffmpeg publish to it as stream name for
// seconds (startFFmpeg), and waits until the stream serves playlist (one
// of its files: "index.m3u8", "stream.m3u8").
func startStream(t *testing.T, name string, seconds int, playlist string) *shopcast {
	t.Helper()
	srv := startShopcast(t)
	e2etest.FFmpegOBS(t, "rtmp://"+srv.RTMP+"/live/"+name, seconds)
	e2etest.WaitUntil(t, 20*time.Second, "the stream's playlist", func() bool {
		code, _ := status(http.MethodGet, srv.url("/live/"+name+"/"+playlist))
		return code == http.StatusOK
	})
	return srv
}

// pagesBase returns where the browser finds the pages (the watch page and
// the cue SDK): the server itself.
func pagesBase(t *testing.T, s *shopcast, name string) string {
	t.Helper()
	for _, path := range []string{"/watch/" + name, "/sdk/shopcast-cues.js"} {
		if code, err := status(http.MethodGet, s.url(path)); code != http.StatusOK {
			t.Fatalf("GET %s: %d %v", path, code, err)
		}
	}
	return s.url("")
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
			lastMSN, lastPart, complete, ok := e2etest.LastPart(body)
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
