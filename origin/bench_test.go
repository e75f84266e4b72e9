package origin

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/shopcast/shopcast/packager"
)

// BenchmarkBlockedRequestStack reports the goroutine stack that an
// HTTP/1.1 connection holds while its blocking playlist request waits,
// after an earlier response on it: the per-viewer memory that Handler's
// shallow call chain keeps at 8 KiB (plus net/http's 2 KiB background
// reader) instead of 16 KiB. 1000 connections are held at once (within
// the default limit of open files); one round takes over a second, so the
// benchmark runs once.
func BenchmarkBlockedRequestStack(b *testing.B) {
	release := make(chan struct{})
	// Over 2 KiB, so that net/http writes the header from inside the
	// handler rather than after it returns, as for real playlists.
	body := make([]byte, 3000)
	s := &Server{Address: "127.0.0.1:0", Observer: nopObserver{}, Source: sourceFunc(
		func(ctx context.Context, req packager.Request) (*packager.Response, error) {
			if req.MSN >= 0 {
				select {
				case <-release:
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			}
			return &packager.Response{Kind: packager.KindPlaylist, Body: body, TargetDuration: 2 * time.Second}, nil
		})}
	if err := s.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	}()
	defer close(release)
	addr := s.Addr().String()

	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.StackInuse
	const n = 1000
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, c)
		fmt.Fprint(c, "GET /live/shop/stream.m3u8 HTTP/1.1\r\nHost: bench\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			b.Fatal(err)
		}
		_ = resp.Body.Close()
		fmt.Fprint(c, "GET /live/shop/stream.m3u8?_HLS_msn=10&_HLS_part=1 HTTP/1.1\r\nHost: bench\r\n\r\n")
	}
	// Let every connection reach its blocked request; two GCs shrink what
	// can be shrunk.
	time.Sleep(time.Second)
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.StackInuse-before)/float64(n)/1024, "stack-KiB/conn")
}

type nopObserver struct{}

func (nopObserver) ObserveLive(*http.Request, LiveRequest) {}
