package ladder

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"

	"github.com/shopcast/shopcast/ingest"
	"github.com/shopcast/shopcast/packager"
)

// fixture is an H.264 elementary stream made by ffmpeg, as an RTMP
// publisher would hand it to the Sink: parameter sets out of band.
type fixture struct {
	codec  codecs.Codec
	frames []fixtureFrame
	width  int
	height int
}

type fixtureFrame struct {
	pts, dts time.Duration
	key      bool
	au       [][]byte
}

// fixtures are made once per test binary, by codec.
var (
	fixtureMu sync.Mutex
	fixtures  = map[string]*fixture{}
)

// needFFmpeg skips a test where ffmpeg is not installed (make deps
// installs it).
func needFFmpeg(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg not installed (make deps)")
	}
}

// loadFixture makes 8 s of 640x360 H.264 at 30 fps with a keyframe every
// second (but one GOP of 20 frames, so keyframes are not on a fixed grid).
func loadFixture(t *testing.T) *fixture { return loadCodecFixture(t, "h264") }

// loadFixtureBFrames is loadFixture with two B-frames (OBS's x264 without
// the zerolatency tune): decode times run ahead of presentation times.
func loadFixtureBFrames(t *testing.T) *fixture { return loadCodecFixture(t, "h264b") }

// loadFixtureH265 is loadFixture in H.265, as an RTSP camera sends.
func loadFixtureH265(t *testing.T) *fixture { return loadCodecFixture(t, "h265") }

func loadCodecFixture(t *testing.T, codec string) *fixture {
	t.Helper()
	needFFmpeg(t)
	fixtureMu.Lock()
	defer fixtureMu.Unlock()
	if fx := fixtures[codec]; fx != nil {
		return fx
	}
	fx, err := makeFixture(codec)
	if err != nil {
		t.Fatal(err)
	}
	fixtures[codec] = fx
	return fx
}

func makeFixture(codec string) (*fixture, error) {
	dir, err := os.MkdirTemp("", "ladder-fixture")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "src.ts")
	enc := []string{"-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "1000", "-sc_threshold", "0", "-bf", "0"}
	if codec == "h264b" {
		enc = []string{"-c:v", "libx264", "-preset", "veryfast", "-g", "1000", "-sc_threshold", "0", "-bf", "2", "-b_strategy", "0"}
	}
	if codec == "h265" {
		enc = []string{"-c:v", "libx265", "-preset", "ultrafast", "-forced-idr", "1",
			"-x265-params", "log-level=error:keyint=1000:min-keyint=1000:scenecut=0:bframes=0:open-gop=0"}
	}
	args := append([]string{"-hide_banner", "-nostdin", "-loglevel", "error",
		"-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30", "-t", "8", "-pix_fmt", "yuv420p",
		"-force_key_frames", "expr:eq(n,0)+eq(mod(n-20,30),0)*gte(n,20)"}, enc...)
	out, err := exec.Command("ffmpeg", append(args, "-f", "mpegts", path)...).CombinedOutput()
	if err != nil {
		return nil, errors.New("ffmpeg fixture: " + err.Error() + ": " + string(out))
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	r := &mpegts.Reader{R: bytes.NewReader(b)}
	if err := r.Initialize(); err != nil {
		return nil, err
	}
	fx := &fixture{}
	var first int64 = -1
	onAU := func(pts, dts int64, au [][]byte) error {
		if first < 0 {
			first = dts
		}
		var key bool
		var pic [][]byte
		if codec == "h265" {
			key = h265.IsRandomAccess(au)
			var vps, sps, pps []byte
			for _, n := range au {
				switch h265.NALUType((n[0] >> 1) & 0x3f) {
				case h265.NALUType_VPS_NUT:
					vps = n
				case h265.NALUType_SPS_NUT:
					sps = n
				case h265.NALUType_PPS_NUT:
					pps = n
				case h265.NALUType_AUD_NUT:
				default:
					pic = append(pic, append([]byte(nil), n...))
				}
			}
			if key && fx.codec == nil {
				fx.codec = &codecs.H265{VPS: vps, SPS: sps, PPS: pps}
			}
		} else {
			key = h264.IsRandomAccess(au)
			if key && fx.codec == nil {
				sps, pps := paramSets(au)
				fx.codec = &codecs.H264{SPS: sps, PPS: pps}
			}
			for _, n := range pictureOnly(au) {
				pic = append(pic, append([]byte(nil), n...))
			}
		}
		toDur := func(v int64) time.Duration { return time.Duration(v-first) * time.Second / 90000 }
		fx.frames = append(fx.frames, fixtureFrame{pts: toDur(pts) + 21*time.Millisecond, dts: toDur(dts) + 21*time.Millisecond, key: key, au: pic})
		return nil
	}
	if codec == "h265" {
		r.OnDataH265(r.Tracks()[0], onAU)
	} else {
		r.OnDataH264(r.Tracks()[0], onAU)
	}
	for {
		if err := r.Read(); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				break
			}
			return nil, err
		}
	}
	if fx.codec == nil || len(fx.frames) < 200 {
		return nil, errors.New("ffmpeg fixture: too few frames")
	}
	v := newVideoCodec(fx.codec)
	if v == nil || v.width == 0 {
		return nil, errors.New("ffmpeg fixture: its SPS does not parse")
	}
	fx.width, fx.height = v.width, v.height
	return fx, nil
}

// recUnit is one unit a fake Sink received.
type recUnit struct {
	pts, dts time.Duration
	key      bool
	at       time.Time
}

// fakeSink stands in for the packager: it records every publication and
// its units, and can supersede the source.
type fakeSink struct {
	mu       sync.Mutex
	pubs     []*fakePub
	changed  chan struct{}
	noSource bool
}

func newFakeSink() *fakeSink { return &fakeSink{changed: make(chan struct{}, 1)} }

type fakePub struct {
	s      *fakeSink
	info   ingest.PublishInfo
	units  []recUnit
	closed bool
	gone   bool // the source is gone: variants get ErrSourceGone
}

func (s *fakeSink) Publish(info ingest.PublishInfo) (ingest.Publication, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if info.Variant != "" && s.noSource {
		return nil, packager.ErrNoSource
	}
	p := &fakePub{s: s, info: info}
	s.pubs = append(s.pubs, p)
	s.signal()
	return p, nil
}

func (s *fakeSink) signal() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

func (p *fakePub) WriteUnit(u *ingest.Unit) error {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	if p.gone {
		return packager.ErrSourceGone
	}
	key := h264.IsRandomAccess(u.AU)
	p.units = append(p.units, recUnit{pts: u.PTS, dts: u.DTS, key: key, at: time.Now()})
	p.s.signal()
	return nil
}

func (p *fakePub) WriteData(*ingest.Data) {}

func (p *fakePub) Close() {
	p.s.mu.Lock()
	p.closed = true
	p.s.mu.Unlock()
}

// variants returns the publications of one variant, in order.
func (s *fakeSink) variants(name string) []*fakePub {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*fakePub
	for _, p := range s.pubs {
		if p.info.Variant == name {
			out = append(out, p)
		}
	}
	return out
}

// units returns a copy of a publication's units.
func (s *fakeSink) units(p *fakePub) []recUnit {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]recUnit(nil), p.units...)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// publisher plays the fixture into a Sink at its frame rate, looping with
// the timestamps running on, until stop.
type publisher struct {
	t     *testing.T
	pub   ingest.Publication
	track *ingest.Track
	fx    *fixture

	mu   sync.Mutex
	sent []recUnit

	stop chan struct{}
	done chan struct{}
}

func startPublisher(t *testing.T, sink ingest.Sink, name string, fx *fixture, speed float64) *publisher {
	t.Helper()
	track := &ingest.Track{ID: 1, Codec: fx.codec}
	pub, err := sink.Publish(ingest.PublishInfo{Name: name, Proto: "rtmp", Remote: "127.0.0.1:1", Tracks: []*ingest.Track{track}})
	if err != nil {
		t.Fatal(err)
	}
	p := &publisher{t: t, pub: pub, track: track, fx: fx, stop: make(chan struct{}), done: make(chan struct{})}
	go p.run(speed)
	t.Cleanup(p.end)
	return p
}

func (p *publisher) run(speed float64) {
	defer close(p.done)
	span := p.fx.frames[len(p.fx.frames)-1].dts + time.Second/30
	start := time.Now()
	for loop := 0; ; loop++ {
		for _, f := range p.fx.frames {
			base := time.Duration(loop) * span
			due := start.Add(time.Duration(float64(base+f.dts) / speed))
			select {
			case <-p.stop:
				return
			case <-time.After(time.Until(due)):
			}
			au := make([][]byte, len(f.au))
			for i, n := range f.au {
				au[i] = append([]byte(nil), n...)
			}
			u := &ingest.Unit{Track: p.track, PTS: base + f.pts, DTS: base + f.dts, AU: au}
			if err := p.pub.WriteUnit(u); err != nil {
				return
			}
			p.mu.Lock()
			p.sent = append(p.sent, recUnit{pts: u.PTS, dts: u.DTS, key: f.key, at: time.Now()})
			p.mu.Unlock()
		}
	}
}

func (p *publisher) units() []recUnit {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]recUnit(nil), p.sent...)
}

// end stops the publisher and closes its publication.
func (p *publisher) end() {
	select {
	case <-p.stop:
		return
	default:
	}
	close(p.stop)
	<-p.done
	p.pub.Close()
}

// logBuffer collects log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) count(s string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Count(b.buf.String(), s)
}

func (b *logBuffer) logger() *slog.Logger { return slog.New(slog.NewTextHandler(b, nil)) }
