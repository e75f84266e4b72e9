package ingest

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtp"
)

// rtspLogEvery is the least time between two warnings about the same
// publication's packets (decode errors, lost packets), so that a lossy
// camera cannot flood the log. It is a log policy, not a limit on media.
const rtspLogEvery = 10 * time.Second

// rtspClock places RTP packets on a session's timeline.
// *gortsplib.ServerSession and *gortsplib.Client implement it.
type rtspClock interface {
	// PacketPTS2 handles RTP timestamp wrap-around and aligns the tracks of
	// the session; it returns false until a packet can be placed.
	PacketPTS2(*description.Media, *rtp.Packet) (int64, bool)
	// PacketNTP gives the wall clock time of a packet once an RTCP sender
	// report has been received.
	PacketNTP(*description.Media, *rtp.Packet) (time.Time, bool)
}

// rtspPublication feeds the RTP packets of one RTSP session (a publisher's,
// or one connection of a pull) to a Sink as one publication.
//
// The Sink needs every track's codec parameters when the publication starts,
// and in-band parameter sets may replace the SDP's until the first random
// access unit, so the publication starts on the first random access unit of
// a video track (at once for audio-only sessions). Units before it could not
// be decoded and are dropped, as the packager would drop them.
type rtspPublication struct {
	sink   Sink
	info   PublishInfo
	clock  rtspClock
	log    *slog.Logger
	tracks []*rtspTrack
	video  bool
	// fail ends the session when the Sink refuses it or a handler panics.
	// It must not block.
	fail func()

	mu      sync.Mutex
	pub     Publication
	closed  bool
	lastLog time.Time
	quiet   int // warnings suppressed since lastLog
}

func newRTSPPublication(sink Sink, info PublishInfo, clock rtspClock, log *slog.Logger, tracks []*rtspTrack, fail func()) *rtspPublication {
	p := &rtspPublication{sink: sink, info: info, clock: clock, log: log, tracks: tracks, fail: fail}
	for _, t := range tracks {
		p.video = p.video || t.video
	}
	return p
}

// listen registers the packet callbacks with a session or client.
func (p *rtspPublication) listen(onPacketRTP func(*description.Media, format.Format, func(*rtp.Packet))) {
	for _, t := range p.tracks {
		onPacketRTP(t.media, t.format, func(pkt *rtp.Packet) {
			defer func() {
				if r := recover(); r != nil {
					p.log.Error("rtsp packet handler panicked; closing the session", "err", fmt.Errorf("%v", r))
					p.close()
					p.fail()
				}
			}()
			p.handle(t, pkt)
		})
	}
}

// handle decodes one packet and writes the units it completes. Tracks may
// come from several goroutines (gortsplib's client reads each UDP media in
// its own), and the start of the publication reads every track's parameter
// sets: decoding is under the publication's lock too.
func (p *rtspPublication) handle(t *rtspTrack, pkt *rtp.Packet) {
	at := rtspTime{ts: pkt.Timestamp}
	at.pts, at.ok = p.clock.PacketPTS2(t.media, pkt)
	if at.ok {
		at.ntp, _ = p.clock.PacketNTP(t.media, pkt)
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	units, err := t.decode(pkt, at)
	if err != nil {
		p.warnLocked("rtsp: undecodable packet", "codec", t.format.Codec(), "err", err)
	}
	for i := range units {
		u := &units[i]
		if p.pub == nil && !p.startLocked(t, u) {
			continue
		}
		if t.track == nil {
			continue
		}
		if err := p.pub.WriteUnit(t.unit(u)); err != nil {
			p.warnLocked("rtsp: unit refused by the packager", "codec", t.format.Codec(), "err", err)
		}
	}
}

// startLocked publishes to the Sink if u may start the publication.
func (p *rtspPublication) startLocked(t *rtspTrack, u *rtspUnit) bool {
	if p.video && (!t.video || !u.key || t.codec() == nil) {
		return false
	}
	var tracks []*Track
	for _, tr := range p.tracks {
		c := tr.codec()
		if c == nil {
			p.log.Warn("rtsp: video track left out: no parameter sets in the SDP or before the first key frame",
				"codec", tr.format.Codec())
			continue
		}
		tr.track = &Track{ID: len(tracks) + 1, Codec: c, ClockRate: int(tr.clock)}
		tracks = append(tracks, tr.track)
	}
	info := p.info
	info.Tracks = tracks
	pub, err := p.sink.Publish(info)
	if err != nil {
		p.log.Error("rtsp: publication refused", "err", err)
		p.closed = true
		p.fail()
		return false
	}
	p.pub = pub
	return true
}

// warnLocked logs a warning about the session's media, at most once per
// rtspLogEvery.
func (p *rtspPublication) warnLocked(msg string, args ...any) {
	now := time.Now()
	if now.Sub(p.lastLog) < rtspLogEvery {
		p.quiet++
		return
	}
	if p.quiet > 0 {
		args = append(args, "suppressed", p.quiet)
	}
	p.lastLog, p.quiet = now, 0
	p.log.Warn(msg, args...)
}

// warn is warnLocked for callers outside the packet path.
func (p *rtspPublication) warn(msg string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.warnLocked(msg, args...)
}

// close ends the publication; later packets are ignored.
func (p *rtspPublication) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	if p.pub != nil {
		p.pub.Close()
	}
}

// published reports whether the Sink has the publication.
func (p *rtspPublication) published() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pub != nil
}

// codecNames lists the tracks' codecs for log lines, named by codecName
// as RTMP's are. A video track whose parameter sets are still to come has
// no codec yet: its format's name is the same (H264, H265).
func codecNames(tracks []*rtspTrack) string {
	names := make([]string, len(tracks))
	for i, t := range tracks {
		if c := t.codec(); c != nil {
			names[i] = codecName(c)
		} else {
			names[i] = t.format.Codec()
		}
	}
	return strings.Join(names, ",")
}
