package origin

import (
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/shopcast/shopcast/packager"
)

// trickle writes prefix at once, then s one byte per interval until the
// server closes the connection or s is all sent, and returns how long the
// connection lived and whether the server closed it.
func trickle(t *testing.T, addr, prefix, s string, interval time.Duration) (time.Duration, bool) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Error(err)
		return 0, true
	}
	defer conn.Close()
	start := time.Now()
	if _, err := conn.Write([]byte(prefix)); err != nil {
		return time.Since(start), true
	}
	closed := make(chan struct{})
	go func() {
		// The server may answer (408) or just close: either ends the read.
		_, _ = io.Copy(io.Discard, conn)
		close(closed)
	}()
	for i := 0; i < len(s); i++ {
		select {
		case <-closed:
			return time.Since(start), true
		case <-time.After(interval):
		}
		if _, err := conn.Write([]byte{s[i]}); err != nil {
			return time.Since(start), true
		}
	}
	select {
	case <-closed:
		return time.Since(start), true
	case <-time.After(10 * interval):
		return time.Since(start), false
	}
}

// TestSlowloris trickles a request's headers, or its body, one byte at a
// time: the server closes the connection once ReadHeaderTimeout (headers)
// or ReadTimeout (the whole request) has passed, however steadily bytes
// arrive, and serves other clients meanwhile.
func TestSlowloris(t *testing.T) {
	src := &fakeSource{resp: mediaResponse(packager.KindPart, []byte("media"))}
	s := &Server{
		Source:            src,
		ReadHeaderTimeout: 300 * time.Millisecond,
		ReadTimeout:       600 * time.Millisecond,
		IdleTimeout:       400 * time.Millisecond,
	}
	s.Handle("POST /echo", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.Copy(io.Discard, r.Body)
		if errors.Is(err, os.ErrDeadlineExceeded) || err != nil {
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	addr := startServer(t, s)

	headers := "GET /live/a/part1.m4s HTTP/1.1\r\nHost: x\r\nX-Slow: " + strings.Repeat("a", 200) + "\r\n\r\n"
	bodyHeaders := "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 200\r\n\r\n"
	for _, c := range []struct {
		name, prefix, req string
		interval          time.Duration
		limit             time.Duration
	}{
		// 250 bytes at 20 ms: 5 s of headers against a 300 ms limit.
		{"headers", "", headers, 20 * time.Millisecond, s.ReadHeaderTimeout},
		// Headers at once, then a body over 4 s against a 600 ms limit.
		{"body", bodyHeaders, strings.Repeat("b", 200), 20 * time.Millisecond, s.ReadTimeout},
	} {
		t.Run(c.name, func(t *testing.T) {
			const n = 20
			lived := make(chan time.Duration, n)
			for range n {
				go func() {
					d, closed := trickle(t, addr, c.prefix, c.req, c.interval)
					if !closed {
						d = -1
					}
					lived <- d
				}()
			}
			// Meanwhile an ordinary client is served.
			resp, err := http.Get("http://" + addr + "/live/a/part1.m4s")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("ordinary request during the attack: %d", resp.StatusCode)
			}
			for range n {
				d := <-lived
				if d < 0 {
					t.Fatal("a trickling client was never closed")
				}
				if d > c.limit+time.Second || d < c.limit/2 {
					t.Errorf("a trickling client lived %v, limit %v", d, c.limit)
				}
			}
		})
	}

	// An idle keep-alive connection is closed after IdleTimeout.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, _ = conn.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"))
	start := time.Now()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.Copy(io.Discard, conn)
	if d := time.Since(start); d > s.IdleTimeout+time.Second {
		t.Errorf("idle keep-alive connection lived %v, IdleTimeout %v", d, s.IdleTimeout)
	}
}
