package origin

import (
	"bufio"
	"context"
	"fmt"
	"io"
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
			return &packager.Response{Kind: packager.KindPlaylist, ContentType: "application/vnd.apple.mpegurl", Body: body, TargetDuration: 2 * time.Second}, nil
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

// BenchmarkPartResponse sends one viewer's pipelined pair, a playlist and
// a 110 KB part (a 300 ms part of a 2.8 Mbit/s stream), over loopback HTTP/1.1,
// on the Server's own listener and on a plain http.Server serving the
// same Handler: the difference is what sending a part's header and body
// in one write saves, client and server together.
func BenchmarkPartResponse(b *testing.B) {
	playlist, part := make([]byte, 1500), make([]byte, 110_000)
	src := sourceFunc(func(ctx context.Context, req packager.Request) (*packager.Response, error) {
		if req.File == "stream.m3u8" {
			return &packager.Response{Kind: packager.KindPlaylist, ContentType: "application/vnd.apple.mpegurl", Body: playlist, TargetDuration: 2 * time.Second}, nil
		}
		return &packager.Response{Kind: packager.KindPart, ContentType: "video/mp4", Body: part, TargetDuration: 2 * time.Second}, nil
	})
	for _, bc := range []struct {
		name  string
		start func(*Server) (addr string, stop func())
	}{
		{"listener=origin", func(s *Server) (string, func()) {
			if err := s.Start(); err != nil {
				b.Fatal(err)
			}
			return s.Addr().String(), func() { _ = s.Shutdown(context.Background()) }
		}},
		{"listener=plain", func(s *Server) (string, func()) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			srv := &http.Server{Handler: s.Handler()}
			go func() { _ = srv.Serve(ln) }()
			return ln.Addr().String(), func() { _ = srv.Close() }
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			addr, stop := bc.start(&Server{Address: "127.0.0.1:0", Source: src})
			defer stop()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			defer func() { _ = c.Close() }()
			br := bufio.NewReaderSize(c, 4<<10)
			pair := []byte("GET /live/shop/stream.m3u8?_HLS_msn=3&_HLS_part=1 HTTP/1.1\r\nHost: bench\r\n\r\n" +
				"GET /live/shop/part5.m4s HTTP/1.1\r\nHost: bench\r\n\r\n")
			want := []int64{int64(len(playlist)), int64(len(part))}
			b.SetBytes(int64(len(playlist) + len(part)))
			for b.Loop() {
				if _, err := c.Write(pair); err != nil {
					b.Fatal(err)
				}
				for _, n := range want {
					resp, err := http.ReadResponse(br, nil)
					if err != nil {
						b.Fatal(err)
					}
					got, err := io.Copy(io.Discard, resp.Body)
					_ = resp.Body.Close()
					if err != nil || got != n || resp.StatusCode != http.StatusOK {
						b.Fatalf("status %d, %d bytes (want %d), err %v", resp.StatusCode, got, n, err)
					}
				}
			}
		})
	}
}
