// Package bench measures shopcast end to end on loopback: a real RTMP
// publisher (internal/testpub's client, paced in real time) feeds the
// server the binary runs (internal/server: ingest, packager, origin, cue
// API, metrics), and LL-HLS viewers read through HTTP/1.1 with blocking
// playlist reloads.
//
// Two figures are measured (docs/benchmarks.md explains them):
// PublishToDeliverable, the time from the publisher writing a part's last
// video frame into its RTMP socket to a blocked viewer holding the part's
// bytes; and Viewers, what 1000 concurrent viewers of one stream cost the
// process and how far apart they get each part.
//
// Everything runs in one process: the publisher and the viewers share the
// CPU with the server, so figures are upper bounds for the server alone.
package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	shopcast "github.com/shopcast/shopcast/internal/server"
	"github.com/shopcast/shopcast/ladder"
	"github.com/shopcast/shopcast/packager"
)

// streamName is the stream every benchmark publishes to.
const streamName = "bench"

// server is an in-process shopcast, started through internal/server (the
// wiring the binary runs: cue store and API, metrics, both ingests), each
// listener on a free port of 127.0.0.1.
type server struct {
	pkg   *packager.Manager
	lad   *ladder.Ladder
	addrs shopcast.Addrs
	stop  context.CancelFunc
	done  chan error
	dir   string // holds the cue store
}

func startServer() (*server, error) { return startServerConfig(nil) }

// startServerConfig is startServer with settings of the benchmark's own
// (more streams, a longer target duration), changed by edit when set.
func startServerConfig(edit func(*shopcast.Config)) (*server, error) {
	dir, err := os.MkdirTemp("", "shopcast-bench")
	if err != nil {
		return nil, err
	}
	cfg := shopcast.Defaults()
	cfg.HTTP, cfg.RTMP, cfg.RTSP = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.RTSPUDPRTP, cfg.RTSPUDPRTCP = "", "" // ffmpeg publishes RTSP over TCP
	cfg.CueStore = filepath.Join(dir, "cues.db")
	if edit != nil {
		edit(&cfg)
	}
	srv, err := shopcast.New(cfg, slog.New(slog.DiscardHandler))
	if err == nil {
		err = srv.Start()
	}
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &server{pkg: srv.Packager(), lad: srv.Ladder(), addrs: srv.Addrs(), stop: cancel, done: make(chan error, 1), dir: dir}
	go func() { s.done <- srv.Run(ctx) }()
	return s, nil
}

// liveURLs returns the publish and play URLs of the live namespace, which
// a stream name completes: rtmp://HOST/live/ and http://HOST/live/.
func (s *server) liveURLs() (publish, play string) {
	return fmt.Sprintf("rtmp://%s/live/", s.addrs.RTMP), fmt.Sprintf("http://%s/live/", s.addrs.HTTP)
}

// publishURL is where the publisher sends the stream.
func (s *server) publishURL() string {
	publish, _ := s.liveURLs()
	return publish + streamName
}

// baseURL is the directory of the stream's HLS files, with a trailing slash.
func (s *server) baseURL() string {
	_, play := s.liveURLs()
	return play + streamName + "/"
}

// cuesURL is the cue API of stream name.
func (s *server) cuesURL(name string) string {
	return fmt.Sprintf("http://%s/api/v1/streams/%s/cues", s.addrs.HTTP, name)
}

// close shuts the server down as the binary does at SIGTERM and removes
// its cue store.
func (s *server) close() {
	s.stop()
	<-s.done
	_ = os.RemoveAll(s.dir)
}

// newHTTPClient returns an HTTP/1.1 keep-alive client able to hold conns
// connections to the origin. Compression is off so that viewers spend no
// CPU inflating playlists in the shared process.
func newHTTPClient(conns int) *http.Client {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        conns + 16,
		MaxIdleConnsPerHost: conns + 16,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
	if useH2C() {
		// HTTP/2 over cleartext with prior knowledge (the origin's h2c):
		// many requests share a few connections, as behind a CDN edge.
		p := new(http.Protocols)
		p.SetUnencryptedHTTP2(true)
		tr.Protocols = p
	}
	return &http.Client{Transport: tr}
}

// useH2C says whether viewers and idle requests speak HTTP/2 over cleartext
// (cmd/shopcast-bench -h2c sets the variable for both processes).
func useH2C() bool { return os.Getenv("SHOPCAST_BENCH_H2C") == "1" }

// newViewerFetcher returns the client of one viewer of base: its own
// pipelining HTTP/1.1 connection, or c when viewers speak HTTP/2.
func newViewerFetcher(c *http.Client, base string) (fetcher, error) {
	if useH2C() {
		return stdFetcher{c}, nil
	}
	return newPipeFetcher(base)
}

// untilWindowFull sleeps until the packager holds as much media as it
// keeps (its playlist window and the segments retained after it, from a
// stream that became ready at ready): memory read before that grows with
// the stream, not with the viewers added.
func (s *server) untilWindowFull(ctx context.Context, ready time.Time) bool {
	cfg := s.pkg.Config()
	full := time.Duration(cfg.WindowSegments+cfg.RetainSegments+1) * cfg.TargetDuration
	return sleep(ctx, time.Until(ready.Add(full)))
}

// waitReady waits until the origin serves the stream's media playlist (the
// packager holds the first one until the first segment is complete).
func waitReady(ctx context.Context, c *http.Client, base string) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		var buf []byte
		err := get(ctx, c, base+"stream.m3u8", &buf)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("stream not ready: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// errStatus is returned by get for a response other than 200.
var errStatus = errors.New("unexpected HTTP status")
