package ingest_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/conn"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/opus"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"
	tscodecs "github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts/codecs"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"

	"github.com/shopcast/shopcast/ingest"
)

// waitTimeout bounds every wait on a condition in these tests.
const waitTimeout = 10 * time.Second

// recSink is a Sink that records every publication and unit, and optionally
// forwards them to another Sink (the real packager).
type recSink struct {
	next ingest.Sink

	mu      sync.Mutex
	changed chan struct{}
	pubs    []*recPub
}

type recPub struct {
	s      *recSink
	next   ingest.Publication
	info   ingest.PublishInfo
	units  []ingest.Unit
	closed bool
}

func newRecSink(next ingest.Sink) *recSink {
	return &recSink{next: next, changed: make(chan struct{})}
}

func (s *recSink) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *recSink) Publish(info ingest.PublishInfo) (ingest.Publication, error) {
	p := &recPub{s: s, info: info}
	if s.next != nil {
		next, err := s.next.Publish(info)
		if err != nil {
			return nil, err
		}
		p.next = next
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pubs = append(s.pubs, p)
	s.notifyLocked()
	return p, nil
}

func (p *recPub) WriteUnit(u *ingest.Unit) error {
	p.s.mu.Lock()
	p.units = append(p.units, *u)
	p.s.notifyLocked()
	p.s.mu.Unlock()
	if p.next != nil {
		return p.next.WriteUnit(u)
	}
	return nil
}

func (p *recPub) WriteData(*ingest.Data) {}

func (p *recPub) Close() {
	p.s.mu.Lock()
	p.closed = true
	p.s.notifyLocked()
	p.s.mu.Unlock()
	if p.next != nil {
		p.next.Close()
	}
}

// wait waits until cond, called with the sink locked, holds.
func (s *recSink) wait(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		ok := cond()
		ch := s.changed
		s.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// snapshot returns the publications, with copies of their units.
func (s *recSink) snapshot() []recPub {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]recPub, len(s.pubs))
	for i, p := range s.pubs {
		out[i] = recPub{info: p.info, units: append([]ingest.Unit(nil), p.units...), closed: p.closed}
	}
	return out
}

// unitsOf returns the units of the track with the given codec type.
func unitsOf[C any](p recPub) []ingest.Unit {
	var out []ingest.Unit
	for _, u := range p.units {
		if _, ok := u.Track.Codec.(C); ok {
			out = append(out, u)
		}
	}
	return out
}

// logBuf collects log lines in text form.
type logBuf struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

func newLog(t testing.TB) (*slog.Logger, *logBuf) {
	b := &logBuf{changed: make(chan struct{})}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", b.String())
		}
	})
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

func (b *logBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	close(b.changed)
	b.changed = make(chan struct{})
	return b.buf.Write(p)
}

func (b *logBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitLine waits for a log line that contains every one of parts.
func (b *logBuf) waitLine(t testing.TB, parts ...string) string {
	t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for {
		b.mu.Lock()
		lines := strings.Split(b.buf.String(), "\n")
		ch := b.changed
		b.mu.Unlock()
	next:
		for _, l := range lines {
			for _, p := range parts {
				if !strings.Contains(l, p) {
					continue next
				}
			}
			return l
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("no log line with %q", parts)
		}
	}
}

// freeUDPPair returns two consecutive free UDP ports on 127.0.0.1, the first
// even, as RTP and RTCP addresses.
func freeUDPPair(t testing.TB) (string, string) {
	t.Helper()
	for range 100 {
		a, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := a.LocalAddr().(*net.UDPAddr).Port
		if port%2 != 0 || port >= 65535 {
			a.Close()
			continue
		}
		b, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(port+1))
		a.Close()
		if err != nil {
			continue
		}
		b.Close()
		return "127.0.0.1:" + strconv.Itoa(port), "127.0.0.1:" + strconv.Itoa(port+1)
	}
	t.Fatal("no free UDP port pair")
	return "", ""
}

// startServer starts an RTSPServer on loopback ports (TCP, and UDP when
// udp is set).
func startServer(t testing.TB, srv *ingest.RTSPServer, udp bool) string {
	t.Helper()
	srv.Address = "127.0.0.1:0"
	for attempt := 1; ; attempt++ {
		if udp {
			srv.UDPRTPAddress, srv.UDPRTCPAddress = freeUDPPair(t)
		}
		err := srv.Start()
		if err == nil {
			break
		}
		// Another process may take a free UDP pair before the server
		// binds it: a new pair then.
		if !udp || attempt == 5 || !strings.Contains(err.Error(), "address already in use") {
			t.Fatal(err)
		}
	}
	t.Cleanup(srv.Close)
	return srv.Addr().String()
}

// vframe and aframe are the access units of a fixture, timestamps at 90 kHz
// as in MPEG-TS.
type vframe struct {
	pts, dts int64
	au       [][]byte
}

type aframe struct {
	pts   int64
	frame []byte
}

// fixture is a short clip made by ffmpeg (testdata/rtsp_*.ts).
type fixture struct {
	h265    bool
	aac     *mpeg4audio.AudioSpecificConfig
	opusCh  int
	video   []vframe
	audio   []aframe
	vps     []byte
	sps     []byte
	pps     []byte
	aFrameD int64 // audio frame duration, 90 kHz
}

func loadFixture(t testing.TB, name string) *fixture {
	t.Helper()
	f, err := os.Open("../testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := &mpegts.Reader{R: bufio.NewReader(f)}
	if err := r.Initialize(); err != nil {
		t.Fatal(err)
	}
	fx := &fixture{}
	for _, tr := range r.Tracks() {
		switch c := tr.Codec.(type) {
		case *tscodecs.H264:
			r.OnDataH264(tr, func(pts, dts int64, au [][]byte) error {
				fx.video = append(fx.video, vframe{pts: pts, dts: dts, au: au})
				return nil
			})
		case *tscodecs.H265:
			fx.h265 = true
			r.OnDataH265(tr, func(pts, dts int64, au [][]byte) error {
				fx.video = append(fx.video, vframe{pts: pts, dts: dts, au: au})
				return nil
			})
		case *tscodecs.MPEG4Audio:
			cfg := c.Config
			fx.aac = &cfg
			fx.aFrameD = 1024 * 90000 / int64(cfg.SampleRate)
			r.OnDataMPEG4Audio(tr, func(pts int64, aus [][]byte) error {
				for i, au := range aus {
					fx.audio = append(fx.audio, aframe{pts: pts + int64(i)*fx.aFrameD, frame: au})
				}
				return nil
			})
		case *tscodecs.Opus:
			fx.opusCh = 2
			r.OnDataOpus(tr, func(pts int64, packets [][]byte) error {
				for _, p := range packets {
					fx.audio = append(fx.audio, aframe{pts: pts, frame: p})
					d := opus.PacketDuration2(p) * 90000 / 48000
					fx.aFrameD = d
					pts += d
				}
				return nil
			})
		}
	}
	for {
		if err := r.Read(); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatal(err)
		}
	}
	if len(fx.video) == 0 || len(fx.audio) == 0 {
		t.Fatalf("%s: %d video and %d audio frames", name, len(fx.video), len(fx.audio))
	}
	for _, nalu := range fx.video[0].au {
		if fx.h265 {
			switch h265.NALUType((nalu[0] >> 1) & 0x3F) {
			case h265.NALUType_VPS_NUT:
				fx.vps = nalu
			case h265.NALUType_SPS_NUT:
				fx.sps = nalu
			case h265.NALUType_PPS_NUT:
				fx.pps = nalu
			}
			continue
		}
		switch h264.NALUType(nalu[0] & 0x1F) {
		case h264.NALUTypeSPS:
			fx.sps = nalu
		case h264.NALUTypePPS:
			fx.pps = nalu
		}
	}
	if fx.sps == nil || fx.pps == nil {
		t.Fatalf("%s: no parameter sets in the first frame", name)
	}
	return fx
}

// isParam reports whether a NAL unit is a parameter set.
func (fx *fixture) isParam(nalu []byte) bool {
	if fx.h265 {
		typ := h265.NALUType((nalu[0] >> 1) & 0x3F)
		return typ == h265.NALUType_VPS_NUT || typ == h265.NALUType_SPS_NUT || typ == h265.NALUType_PPS_NUT
	}
	typ := h264.NALUType(nalu[0] & 0x1F)
	return typ == h264.NALUTypeSPS || typ == h264.NALUTypePPS
}

func (fx *fixture) isKey(au [][]byte) bool {
	if fx.h265 {
		return h265.IsRandomAccess(au)
	}
	return h264.IsRandomAccess(au)
}

// withoutParams returns the frame without its parameter sets.
func (fx *fixture) withoutParams(au [][]byte) [][]byte {
	var out [][]byte
	for _, n := range au {
		if !fx.isParam(n) {
			out = append(out, n)
		}
	}
	return out
}

// withParams returns a key frame with the fixture's parameter sets in front.
func (fx *fixture) withParams(au [][]byte) [][]byte {
	if !fx.isKey(au) {
		return au
	}
	out := [][]byte{}
	if fx.h265 {
		out = append(out, fx.vps)
	}
	out = append(out, fx.sps, fx.pps)
	return append(out, fx.withoutParams(au)...)
}

// publishOpts says how a test publisher sends a fixture.
type publishOpts struct {
	transport gortsplib.Transport
	// sdpParams puts the parameter sets in the SDP only (as most cameras
	// and ffmpeg do); otherwise they are only in band.
	sdpParams bool
	// noMarker clears the RTP marker bit, as some cameras do: frames end on
	// the next timestamp.
	noMarker bool
	// sr sends an RTCP sender report for the video after this many frames
	// (0: none), saying that the frame's RTP time is srNTP.
	sr int
}

var srNTP = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// Base RTP timestamps close to 2^32, so that both tracks wrap around during
// the clip.
const (
	videoTSBase = uint32(0xFFFFFFFF - 45000)
	audioTSBase = uint32(0xFFFFFFFF - 24000)
)

// sentFrame is a frame as the test publisher sent it.
type sentFrame struct {
	video bool
	pts   int64 // 90 kHz
	dts   int64
	au    [][]byte // as the sink should receive it
	frame []byte
}

// testPublisher publishes a fixture with gortsplib's client.
type testPublisher struct {
	fx    *fixture
	opts  publishOpts
	c     *gortsplib.Client
	desc  *description.Session
	vfmt  format.Format
	afmt  format.Format
	venc  func([][]byte) ([]*rtp.Packet, error)
	aenc  func([]byte) ([]*rtp.Packet, error)
	vSSRC uint32
}

func newTestPublisher(t testing.TB, fx *fixture, opts publishOpts) *testPublisher {
	t.Helper()
	p := &testPublisher{fx: fx, opts: opts}
	if fx.h265 {
		f := &format.H265{PayloadTyp: 96}
		if opts.sdpParams {
			f.VPS, f.SPS, f.PPS = fx.vps, fx.sps, fx.pps
		}
		enc, err := f.CreateEncoder()
		if err != nil {
			t.Fatal(err)
		}
		p.vfmt, p.venc = f, enc.Encode
	} else {
		f := &format.H264{PayloadTyp: 96, PacketizationMode: 1}
		if opts.sdpParams {
			f.SPS, f.PPS = fx.sps, fx.pps
		}
		enc, err := f.CreateEncoder()
		if err != nil {
			t.Fatal(err)
		}
		p.vfmt, p.venc = f, enc.Encode
	}
	if fx.aac != nil {
		f := &format.MPEG4Audio{PayloadTyp: 97, Config: fx.aac, SizeLength: 13, IndexLength: 3, IndexDeltaLength: 3}
		enc, err := f.CreateEncoder()
		if err != nil {
			t.Fatal(err)
		}
		p.afmt = f
		p.aenc = func(b []byte) ([]*rtp.Packet, error) { return enc.Encode([][]byte{b}) }
	} else {
		f := &format.Opus{PayloadTyp: 97, ChannelCount: fx.opusCh}
		enc, err := f.CreateEncoder()
		if err != nil {
			t.Fatal(err)
		}
		p.afmt = f
		p.aenc = func(b []byte) ([]*rtp.Packet, error) {
			pkt, err := enc.Encode(b)
			return []*rtp.Packet{pkt}, err
		}
	}
	p.desc = &description.Session{Medias: []*description.Media{
		{Type: description.MediaTypeVideo, Formats: []format.Format{p.vfmt}},
		{Type: description.MediaTypeAudio, Formats: []format.Format{p.afmt}},
	}}
	// The queue holds two clips: tests send them without pacing over TCP.
	p.c = &gortsplib.Client{Transport: &opts.transport, WriteQueueSize: 4096}
	return p
}

func (p *testPublisher) start(url string) error {
	return p.c.StartRecording(url, p.desc)
}

func (p *testPublisher) close() { p.c.Close() }

// schedule returns the frames in sending order: decode order, interleaved by
// time, starting with the first video frame (a key frame), without the audio
// that came before it.
func (p *testPublisher) schedule() []sentFrame {
	fx := p.fx
	var out []sentFrame
	v0 := fx.video[0].dts
	ai := 0
	for ai < len(fx.audio) && fx.audio[ai].pts < v0 {
		ai++
	}
	for _, v := range fx.video {
		for ai < len(fx.audio) && fx.audio[ai].pts <= v.dts {
			out = append(out, sentFrame{pts: fx.audio[ai].pts, dts: fx.audio[ai].pts, frame: fx.audio[ai].frame})
			ai++
		}
		au := v.au
		if p.opts.sdpParams {
			au = fx.withoutParams(au)
		}
		out = append(out, sentFrame{video: true, pts: v.pts, dts: v.dts, au: au})
	}
	for ; ai < len(fx.audio); ai++ {
		out = append(out, sentFrame{pts: fx.audio[ai].pts, dts: fx.audio[ai].pts, frame: fx.audio[ai].frame})
	}
	return out
}

// send sends frames, with the given offset added to their timestamps (for
// sending the clip again). pace is the pause after each video frame (zero:
// none), so that UDP bursts stay within the socket buffers.
func (p *testPublisher) send(frames []sentFrame, offset int64, pace time.Duration) error {
	fx := p.fx
	v0, a0 := fx.video[0].pts, fx.audio[0].pts
	vframes := 0
	for _, f := range frames {
		if f.video {
			pkts, err := p.venc(f.au)
			if err != nil {
				return err
			}
			ts := videoTSBase + uint32(f.pts+offset-v0)
			for _, pkt := range pkts {
				pkt.Timestamp = ts
				if p.opts.noMarker {
					pkt.Marker = false
				}
				if err := p.c.WritePacketRTP(p.desc.Medias[0], pkt); err != nil {
					return err
				}
				p.vSSRC = pkt.SSRC
			}
			vframes++
			if p.opts.sr > 0 && vframes == p.opts.sr {
				sr := &rtcp.SenderReport{SSRC: p.vSSRC, NTPTime: ntpTime(srNTP), RTPTime: ts}
				if err := p.c.WritePacketRTCP(p.desc.Medias[0], sr); err != nil {
					return err
				}
			}
			if pace > 0 {
				time.Sleep(pace) // rate limit, not synchronisation
			}
			continue
		}
		pkts, err := p.aenc(f.frame)
		if err != nil {
			return err
		}
		ts := audioTSBase + uint32((f.pts+offset-a0)*int64(p.afmt.ClockRate())/90000)
		for _, pkt := range pkts {
			pkt.Timestamp = ts
			if err := p.c.WritePacketRTP(p.desc.Medias[1], pkt); err != nil {
				return err
			}
		}
	}
	return nil
}

// ntpTime encodes t in the NTP format of RTCP sender reports.
func ntpTime(t time.Time) uint64 {
	const unixToNTP = 2208988800
	s := uint64(t.Unix() + unixToNTP)
	frac := uint64(t.Nanosecond()) << 32 / 1e9
	return s<<32 | frac
}

// statusOf returns the RTSP status of a client error, or 0.
func statusOf(err error) base.StatusCode {
	var bad liberrors.ErrClientBadStatusCode
	if errors.As(err, &bad) {
		return bad.Code
	}
	return 0
}

// rawRTSP is an RTSP connection driven by hand, for requests gortsplib's
// client will not send (a broken SDP) and for a publisher that costs no CPU
// (the benchmark).
type rawRTSP struct {
	nc   net.Conn
	c    *conn.Conn
	cseq int
}

func dialRTSP(t testing.TB, addr string) *rawRTSP {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawRTSP{nc: nc, c: conn.NewConn(nc)}
}

func (r *rawRTSP) do(method base.Method, u string, h base.Header, body []byte) (*base.Response, error) {
	r.cseq++
	pu, err := base.ParseURL(u)
	if err != nil {
		return nil, err
	}
	if h == nil {
		h = base.Header{}
	}
	h["CSeq"] = base.HeaderValue{strconv.Itoa(r.cseq)}
	if err := r.nc.SetDeadline(time.Now().Add(waitTimeout)); err != nil {
		return nil, err
	}
	if err := r.c.WriteRequest(&base.Request{Method: method, URL: pu, Header: h, Body: body}); err != nil {
		return nil, err
	}
	return r.c.ReadResponse()
}

// recordRaw announces desc at u and starts recording with RTP interleaved in
// the connection; medias are on channels 0, 2, ...
func (r *rawRTSP) recordRaw(u string, desc *description.Session) error {
	for i, m := range desc.Medias {
		m.Control = "trackID=" + strconv.Itoa(i)
	}
	sdp, err := desc.Marshal(false)
	if err != nil {
		return err
	}
	res, err := r.do(base.Announce, u, base.Header{"Content-Type": base.HeaderValue{"application/sdp"}}, sdp)
	if err != nil {
		return err
	}
	if res.StatusCode != base.StatusOK {
		return fmt.Errorf("ANNOUNCE: %d", res.StatusCode)
	}
	var session string
	for i := range desc.Medias {
		h := base.Header{"Transport": base.HeaderValue{
			fmt.Sprintf("RTP/AVP/TCP;unicast;interleaved=%d-%d;mode=record", 2*i, 2*i+1)}}
		if session != "" {
			h["Session"] = base.HeaderValue{session}
		}
		res, err := r.do(base.Setup, u+"/trackID="+strconv.Itoa(i), h, nil)
		if err != nil {
			return err
		}
		if res.StatusCode != base.StatusOK {
			return fmt.Errorf("SETUP: %d", res.StatusCode)
		}
		session, _, _ = strings.Cut(res.Header["Session"][0], ";")
	}
	res, err = r.do(base.Record, u, base.Header{"Session": base.HeaderValue{session}}, nil)
	if err != nil {
		return err
	}
	if res.StatusCode != base.StatusOK {
		return fmt.Errorf("RECORD: %d", res.StatusCode)
	}
	return r.nc.SetDeadline(time.Time{})
}

// runUntil runs f in a goroutine until the test ends.
func runUntil(t testing.TB, f func(ctx context.Context)) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}
