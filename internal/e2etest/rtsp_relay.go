package e2etest

import (
	"net"
	"sync"
	"testing"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtp"
)

// RTSPRelay stands in for an IP camera: an RTSP server (gortsplib's) to
// which a real encoder publishes (ANNOUNCE/RECORD, as ffmpeg does) and from
// which readers play (DESCRIBE/SETUP/PLAY, as a camera serves them), the
// packets forwarded as they come. shopcast's own RTSP server takes
// publishers only, so it cannot be the camera.
type RTSPRelay struct {
	// Addr is the relay's host:port.
	Addr string

	srv *gortsplib.Server

	mu        sync.Mutex
	stream    *gortsplib.ServerStream
	publisher *gortsplib.ServerSession
	recording bool // ServerSession.State is not safe outside its handlers
}

// StartRTSPRelay starts a relay on a free loopback port (TCP only) and
// closes it when the test ends. One publisher at a time, on any path; the
// readers get the latest publisher's stream.
func StartRTSPRelay(t testing.TB) *RTSPRelay {
	t.Helper()
	r := &RTSPRelay{}
	r.srv = &gortsplib.Server{
		Handler:     r,
		RTSPAddress: "127.0.0.1:0",
		Listen: func(network, address string) (net.Listener, error) {
			ln, err := net.Listen(network, address)
			if err == nil {
				r.Addr = ln.Addr().String()
			}
			return ln, err
		},
	}
	if err := r.srv.Start(); err != nil {
		t.Fatalf("rtsp relay: %v", err)
	}
	t.Cleanup(r.srv.Close)
	return r
}

// Publishing reports whether a publisher is recording into the relay.
func (r *RTSPRelay) Publishing() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.recording
}

// OnAnnounce takes a publisher: its description becomes the stream readers
// are served.
func (r *RTSPRelay) OnAnnounce(ctx *gortsplib.ServerHandlerOnAnnounceCtx) (*base.Response, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closeStreamLocked()
	stream := &gortsplib.ServerStream{Server: r.srv, Desc: ctx.Description}
	if err := stream.Initialize(); err != nil {
		return &base.Response{StatusCode: base.StatusInternalServerError}, err
	}
	r.stream, r.publisher = stream, ctx.Session
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// OnDescribe serves the publisher's description; 404 while there is none,
// as a camera that is still booting answers.
func (r *RTSPRelay) OnDescribe(*gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stream == nil {
		return &base.Response{StatusCode: base.StatusNotFound}, nil, nil
	}
	return &base.Response{StatusCode: base.StatusOK}, r.stream, nil
}

// OnSetup serves both sides: a publisher sets up its own tracks, a reader
// those of the stream.
func (r *RTSPRelay) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if ctx.Session.State() == gortsplib.ServerSessionStatePreRecord {
		return &base.Response{StatusCode: base.StatusOK}, nil, nil
	}
	return r.OnDescribe(nil)
}

// OnPlay lets a reader play.
func (r *RTSPRelay) OnPlay(*gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// OnRecord forwards every packet of the publisher to the readers.
func (r *RTSPRelay) OnRecord(ctx *gortsplib.ServerHandlerOnRecordCtx) (*base.Response, error) {
	r.mu.Lock()
	stream := r.stream
	r.recording = true
	r.mu.Unlock()
	ctx.Session.OnPacketRTPAny(func(medi *description.Media, _ format.Format, pkt *rtp.Packet) {
		_ = stream.WritePacketRTP(medi, pkt) // a reader gone is not the publisher's error
	})
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// OnSessionClose ends the stream when its publisher leaves, which ends the
// readers' sessions: the camera went away.
func (r *RTSPRelay) OnSessionClose(ctx *gortsplib.ServerHandlerOnSessionCloseCtx) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ctx.Session == r.publisher {
		r.closeStreamLocked()
	}
}

func (r *RTSPRelay) closeStreamLocked() {
	if r.stream != nil {
		r.stream.Close()
		r.stream, r.publisher, r.recording = nil, nil, false
	}
}
