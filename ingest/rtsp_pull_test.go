package ingest_test

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"

	"github.com/shopcast/shopcast/ingest"
	"github.com/shopcast/shopcast/packager"
)

// rtspSource is an RTSP server standing in for a camera: it serves the
// fixture, looped, at /stream.
type rtspSource struct {
	srv     *gortsplib.Server
	stream  *gortsplib.ServerStream
	stop    context.CancelFunc
	done    chan struct{}
	address string

	closeOnce sync.Once

	mu        sync.Mutex
	describes int
}

func (s *rtspSource) OnDescribe(*gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.describes++
	return s.streamLocked()
}

func (s *rtspSource) OnSetup(*gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.streamLocked()
}

// streamLocked answers 503 until the stream exists (it needs the started
// server, which may already have a client).
func (s *rtspSource) streamLocked() (*base.Response, *gortsplib.ServerStream, error) {
	if s.stream == nil {
		return &base.Response{StatusCode: base.StatusServiceUnavailable}, nil, nil
	}
	return &base.Response{StatusCode: base.StatusOK}, s.stream, nil
}

func (s *rtspSource) OnPlay(*gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	return &base.Response{StatusCode: base.StatusOK}, nil
}

func (s *rtspSource) describeCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.describes
}

// startSource serves fx at addr ("127.0.0.1:0" for any port).
func startSource(t testing.TB, addr string, fx *fixture) *rtspSource {
	t.Helper()
	s := &rtspSource{done: make(chan struct{})}
	s.srv = &gortsplib.Server{Handler: s, RTSPAddress: addr,
		Listen: func(network, address string) (net.Listener, error) {
			ln, err := net.Listen(network, address)
			if err == nil {
				s.address = ln.Addr().String()
			}
			return ln, err
		}}
	if err := s.srv.Start(); err != nil {
		t.Fatal(err)
	}
	// The test publisher's encoders and schedule, writing into the stream.
	p := newTestPublisher(t, fx, publishOpts{sdpParams: true})
	stream := &gortsplib.ServerStream{Server: s.srv, Desc: p.desc}
	if err := stream.Initialize(); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.stream = stream
	s.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	frames := p.schedule()
	clipDur := fx.video[len(fx.video)-1].pts - fx.video[0].pts + 3000
	go func() {
		defer close(s.done)
		for loop := int64(0); ctx.Err() == nil; loop++ {
			for _, f := range frames {
				if ctx.Err() != nil {
					return
				}
				s.write(p, f, loop*clipDur)
			}
		}
	}()
	t.Cleanup(s.close)
	return s
}

// write sends a frame to the stream's readers, eight times faster than real
// time (a rate limit, not synchronisation).
func (s *rtspSource) write(p *testPublisher, f sentFrame, offset int64) {
	fx := p.fx
	if f.video {
		pkts, _ := p.venc(f.au)
		for _, pkt := range pkts {
			pkt.Timestamp = videoTSBase + uint32(f.pts+offset-fx.video[0].pts)
			s.stream.WritePacketRTP(p.desc.Medias[0], pkt) //nolint:errcheck
		}
		time.Sleep(time.Second / 30 / 8)
		return
	}
	pkts, _ := p.aenc(f.frame)
	for _, pkt := range pkts {
		pkt.Timestamp = audioTSBase + uint32((f.pts+offset-fx.audio[0].pts)*int64(p.afmt.ClockRate())/90000)
		s.stream.WritePacketRTP(p.desc.Medias[1], pkt) //nolint:errcheck
	}
}

// close stops the source; it may be called again (gortsplib's
// ServerStream.Close panics when called twice).
func (s *rtspSource) close() {
	s.closeOnce.Do(func() {
		s.stop()
		<-s.done
		s.stream.Close()
		s.srv.Close()
	})
}

// TestRTSPPullReconnect: the camera goes away for 3s; the pull reconnects
// with backoff and publishes again under the same name, and the playlist
// goes on after a discontinuity.
func TestRTSPPullReconnect(t *testing.T) {
	log, logs := newLog(t)
	fx := loadFixture(t, "rtsp_h264_aac.ts")
	pk := packager.New(packager.Config{TargetDuration: time.Second, PartTarget: 200 * time.Millisecond}, log)
	t.Cleanup(pk.Close) // after the pull and the source have stopped
	sink := newRecSink(pk)

	src := startSource(t, "127.0.0.1:0", fx)
	addr := src.address
	pull := &ingest.RTSPPull{
		Name:       "cam",
		URL:        "rtsp://" + addr + "/stream",
		Transport:  "tcp",
		Sink:       sink,
		Registry:   ingest.NewRegistry(log),
		Logger:     log,
		MinBackoff: 100 * time.Millisecond,
		MaxBackoff: 500 * time.Millisecond,
	}
	runUntil(t, func(ctx context.Context) {
		if err := pull.Run(ctx); err != nil {
			t.Error(err)
		}
	})

	// Past the first key frame, so that the packager has a segment.
	sink.wait(t, "the first publication", func() bool {
		return len(sink.pubs) == 1 && len(unitsOf[*codecs.H264](*sink.pubs[0])) >= 40
	})
	src.close()
	sink.wait(t, "the first publication closed", func() bool { return sink.pubs[0].closed })

	// The camera is away for 3s: a scenario, not a synchronisation.
	time.Sleep(3 * time.Second)
	startSource(t, addr, fx) // closed at cleanup
	sink.wait(t, "the second publication", func() bool {
		return len(sink.pubs) == 2 && len(unitsOf[*codecs.H264](*sink.pubs[1])) >= 40
	})

	pubs := sink.snapshot()
	for i, p := range pubs {
		if p.info.Name != "cam" || p.info.Proto != "rtsp-pull" || len(p.info.Tracks) != 2 {
			t.Errorf("publication %d: %+v", i, p.info)
		}
	}
	if strings.Count(logs.String(), `msg="rtsp pull disconnected"`) < 3 {
		t.Errorf("fewer than 3 failed attempts logged in 3s with a backoff of 100-500ms")
	}
	if strings.Contains(logs.String(), "retry_in=1s") {
		t.Errorf("backoff went past MaxBackoff")
	}

	res, err := pk.Fetch(context.Background(), packager.Request{Stream: "cam", File: "stream.m3u8", MSN: -1, Part: -1})
	if err != nil {
		t.Fatal(err)
	}
	pl := string(res.Body)
	before, after, ok := strings.Cut(pl, "#EXT-X-DISCONTINUITY\n")
	if !ok || !strings.Contains(before, "#EXTINF:") || !strings.Contains(after, "#EXT-X-PART:") {
		t.Errorf("no discontinuity between the two connections' media:\n%s", pl)
	}
	if !strings.Contains(after, `#EXT-X-MAP:URI="init1.mp4"`) {
		t.Errorf("the second connection has no init segment of its own:\n%s", pl)
	}
}

// TestRTSPPullOnDemand: nothing is pulled until Demand; the pull stops when
// demand stops, and starts again on the next Demand.
func TestRTSPPullOnDemand(t *testing.T) {
	log, logs := newLog(t)
	fx := loadFixture(t, "rtsp_h264_opus.ts")
	sink := newRecSink(nil)
	src := startSource(t, "127.0.0.1:0", fx)
	pull := &ingest.RTSPPull{
		Name:        "cam",
		URL:         "rtsp://" + src.address + "/stream",
		OnDemand:    true,
		IdleTimeout: 300 * time.Millisecond,
		Sink:        sink,
		Logger:      log,
		MinBackoff:  100 * time.Millisecond,
	}
	runUntil(t, func(ctx context.Context) {
		if err := pull.Run(ctx); err != nil {
			t.Error(err)
		}
	})

	for round := 1; round <= 2; round++ {
		if n := src.describeCount(); n != round-1 {
			t.Fatalf("round %d: the camera was asked %d times before Demand", round, n)
		}
		// A viewer polls the playlist until the stream is there.
		viewer := make(chan struct{})
		viewerDone := make(chan struct{})
		go func() {
			defer close(viewerDone)
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			for {
				pull.Demand()
				select {
				case <-viewer:
					return
				case <-tick.C:
				}
			}
		}()
		sink.wait(t, "a publication on demand", func() bool {
			return len(sink.pubs) == round && len(sink.pubs[round-1].units) > 0
		})
		close(viewer)
		<-viewerDone
		// No more Demand: the pull stops after IdleTimeout.
		sink.wait(t, "the idle pull stopped", func() bool { return sink.pubs[round-1].closed })
		logs.waitLine(t, `msg="rtsp pull stopped: no viewers"`)
	}
	if n := src.describeCount(); n != 2 {
		t.Errorf("%d connections to the camera, want 2", n)
	}
}

// TestRTSPPullYields: a publisher that takes the pull's stream name over
// wins; the pull waits, and comes back when the publisher leaves.
func TestRTSPPullYields(t *testing.T) {
	log, logs := newLog(t)
	fx := loadFixture(t, "rtsp_h264_aac.ts")
	sink := newRecSink(nil)
	reg := ingest.NewRegistry(log)
	src := startSource(t, "127.0.0.1:0", fx)
	pull := &ingest.RTSPPull{
		Name:       "cam",
		URL:        "rtsp://" + src.address + "/stream",
		Transport:  "tcp",
		Sink:       sink,
		Registry:   reg,
		Logger:     log,
		MinBackoff: 50 * time.Millisecond,
	}
	runUntil(t, func(ctx context.Context) {
		if err := pull.Run(ctx); err != nil {
			t.Error(err)
		}
	})
	sink.wait(t, "the pull's publication", func() bool { return len(sink.pubs) == 1 && len(sink.pubs[0].units) > 0 })

	srv := &ingest.RTSPServer{Sink: sink, Logger: log, Registry: reg}
	addr := startServer(t, srv, false)
	p := newTestPublisher(t, fx, publishOpts{transport: gortsplib.TransportTCP})
	if err := p.start("rtsp://" + addr + "/live/cam"); err != nil {
		t.Fatal(err)
	}
	if err := p.send(p.schedule()[:20], 0, 0); err != nil {
		t.Fatal(err)
	}
	sink.wait(t, "the publisher replacing the pull", func() bool {
		return len(sink.pubs) == 2 && sink.pubs[0].closed && sink.pubs[1].info.Proto == "rtsp" && len(sink.pubs[1].units) > 0
	})
	logs.waitLine(t, `msg="rtsp pull waiting: another publisher has the stream name"`)

	p.close()
	sink.wait(t, "the pull back", func() bool {
		return len(sink.pubs) == 3 && sink.pubs[1].closed && sink.pubs[2].info.Proto == "rtsp-pull" && len(sink.pubs[2].units) > 0
	})
}
