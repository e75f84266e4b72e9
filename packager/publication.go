package packager

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4/seekablebuffer"

	"github.com/shopcast/shopcast/ingest"
)

// ErrSuperseded is returned to a publication that a newer publisher of the
// same stream replaced.
var ErrSuperseded = errors.New("publication superseded")

// ErrUnsupportedCodec is returned by Publish for a codec the packager cannot
// put in fMP4.
var ErrUnsupportedCodec = errors.New("unsupported codec")

// publication is one publisher's session feeding a stream. All its methods
// run under the stream's lock.
type publication struct {
	s      *Stream
	info   ingest.PublishInfo
	tracks map[*ingest.Track]*track
	order  []*track
	lead   *track // the track whose frames decide part and segment boundaries
	init   *initFile

	started   bool
	origin    time.Duration // publication clock value of the first keyframe
	mediaBase time.Duration // media time it maps to
	wallBase  time.Time     // wall clock at mediaBase
	disc      bool          // the next segment starts after a discontinuity

	// wallDated tells that the units carry the ingest's dating by arrival
	// (Unit.Wall), which the program date-time follows (dateLead);
	// wallSlack is the least margin by which the open segment's lead frames
	// were dated before it, -1 until known.
	wallDated bool
	wallSlack time.Duration
	wallNeed  time.Duration // the largest move back the settle window needed
	wallStart time.Time     // when the publication started

	pending   map[*track][]*sample
	partStart uint64 // lead decode time of the open part's first sample
	partKey   bool
	partLen   int
	partIdx   int  // the open part's slot on the aligned grid
	warnedGOP bool // the aligned timeline's missing keyframe was logged

	sinceKey int // lead frames since the last keyframe
	gopLen   int // lead frames in the last complete GOP

	unitAt time.Time // when the unit being written reached WriteUnit, for the lag metric

	done       bool
	superseded bool
}

func newPublication(s *Stream, info ingest.PublishInfo, initName string) (*publication, error) {
	p := &publication{s: s, info: info, tracks: map[*ingest.Track]*track{}, pending: map[*track][]*sample{}}
	var init fmp4.Init
	for _, in := range info.Tracks {
		t, err := newTrack(in, len(p.order)+1)
		if err != nil {
			return nil, err
		}
		t.aligned = s.aligned()
		p.tracks[in] = t
		p.order = append(p.order, t)
		if p.lead == nil || (t.video && !p.lead.video) {
			p.lead = t
		}
		init.Tracks = append(init.Tracks, &fmp4.InitTrack{ID: t.id, TimeScale: t.timescale, Codec: in.Codec})
	}
	if p.lead == nil {
		return nil, fmt.Errorf("%w: no tracks", ErrUnsupportedCodec)
	}
	var buf seekablebuffer.Buffer
	if err := init.Marshal(&buf); err != nil {
		return nil, fmt.Errorf("init segment: %w", err)
	}
	p.init = &initFile{name: initName, body: buf.Bytes(), at: time.Now()}
	for _, t := range p.order {
		p.init.codecs = append(p.init.codecs, t.in.Codec)
	}
	setVP9Level(p.init.body, p.init.codecs)
	return p, nil
}

// start maps the publication's clock to the stream's media time at its
// first lead keyframe u, which arrived at wall time at.
func (p *publication) start(u *ingest.Unit, at time.Time) {
	s := p.s
	p.started = true
	p.origin = u.DTS
	p.mediaBase = s.mediaEnd()
	// The program date-time follows the ingest's dating by arrival
	// when it gives one, else the arrival of this key frame. The
	// publisher's own clock (u.NTP, RTCP sender reports) is not taken:
	// GStreamer's was seen up to 2.8 s ahead of the wall clock.
	p.wallBase = at
	if !u.Wall.IsZero() {
		p.wallDated, p.wallStart = true, at
		p.wallBase = u.Wall.Add(u.DTS - u.PTS - wallMargin)
	}
}

// WriteUnit implements ingest.Publication.
func (p *publication) WriteUnit(u *ingest.Unit) error {
	err := p.writeUnit(u)
	// The TS copy of a part this unit completed is muxed once the fMP4
	// part is out and the stream unlocked.
	p.s.ts.drain(p.s)
	return err
}

func (p *publication) writeUnit(u *ingest.Unit) error {
	s, at := p.s, time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	p.unitAt = at
	if p.superseded {
		return ErrSuperseded
	}
	if p.done {
		return io.ErrClosedPipe
	}
	t := p.tracks[u.Track]
	if t == nil {
		if u.Track == nil {
			return errors.New("unit without track")
		}
		return fmt.Errorf("unknown track %d", u.Track.ID)
	}
	// Codec parsers index NAL units and OBUs without checking them, and no
	// codec has empty frames.
	if t.video && (len(u.AU) == 0 || slices.ContainsFunc(u.AU, func(b []byte) bool { return len(b) == 0 })) ||
		!t.video && len(u.Frame) == 0 {
		return fmt.Errorf("track %d: empty access unit or NAL unit", u.Track.ID)
	}
	s.stats.unit(t.video, u)
	if !p.started {
		// Playback starts on the lead track's first keyframe; earlier units
		// cannot be decoded and are dropped.
		if t != p.lead || !t.isKey(u) {
			return nil
		}
		if s.aligned() {
			if !p.alignedStart(u.DTS, at) {
				return nil
			}
		} else {
			p.start(u, at)
		}
	}
	smp, err := t.build(u, p.origin, p.mediaBase)
	if err != nil || smp == nil {
		return err
	}
	if t != p.lead {
		p.pending[t] = append(p.pending[t], smp)
		return nil
	}
	// Events posted "now" land on this frame, at its presentation time.
	s.resolveNow(t.duration(uint64(int64(smp.dts) + int64(smp.PTSOffset))))
	if s.aligned() {
		return p.writeLeadAligned(t, smp)
	}
	return p.writeLead(t, smp)
}

func (p *publication) writeLead(t *track, smp *sample) error {
	s := p.s
	cfg := &s.m.cfg
	half := t.duration(uint64(smp.Duration) / 2)
	if smp.key {
		if p.sinceKey > 0 {
			p.gopLen = p.sinceKey
		}
		p.sinceKey = 0
		if s.open != nil && t.duration(smp.dts)-s.open.start >= cfg.TargetDuration-half {
			if err := p.closePart(); err != nil {
				return err
			}
			s.closeSegment()
		}
	}
	p.sinceKey++
	if p.wallDated && !smp.wall.IsZero() {
		p.dateLead(t, smp, s.open == nil)
	}
	if s.open == nil {
		s.openSegment(t.duration(smp.dts), p.wallBase.Add(t.duration(smp.dts)-p.mediaBase), p.init, p.disc)
		p.disc = false
	}
	if p.partLen == 0 {
		p.partStart = smp.dts
		p.partKey = smp.key
	}
	p.pending[t] = append(p.pending[t], smp)
	p.partLen++
	s.open.frames++

	// Close the part on its last frame, not when the next frame arrives: the
	// part is full when one more frame would take it past PART-TARGET
	// (RFC 8216bis 4.4.4.9: a part is at most PART-TARGET long).
	// The next frame's duration is estimated from this one's, with a margin
	// for publishers whose timestamps are rounded (RTMP's are milliseconds:
	// 33, 33, 34 ms at 30 fps).
	end := smp.dts + uint64(smp.Duration)
	next := uint64(smp.Duration) + uint64(smp.Duration)/8
	full := t.duration(end+next-p.partStart) > cfg.PartTarget
	// With a regular GOP the next frame is predictably a keyframe that starts
	// a new segment: close the segment's last part now, a frame early...
	segDue := t.duration(end)-s.open.start >= cfg.TargetDuration-half
	keyNext := p.gopLen > 0 && p.sinceKey == p.gopLen && segDue
	// ...unless it is short. Apple's HLS authoring spec: "all Partial
	// Segments except the last part of a segment must have a duration of at
	// least 85% of PART-TARGET", and a playlist says which part is the last
	// only by closing its segment (EXTINF). The segment cannot close on the
	// prediction (a wrong one would start the next segment on a
	// non-keyframe), so a short last part waits for the keyframe, which
	// publishes it and closes its segment under one lock: no playlist
	// version lists it open. That costs this part one frame interval, once
	// per segment (33 ms at 30 fps: the 0.2 s tail of a 2 s segment cut in
	// 0.3 s parts); the segment and the next part come out no later.
	short := t.duration(end-p.partStart)*100 < cfg.PartTarget*minPartPercent
	if full || keyNext && !short {
		return p.closePart()
	}
	return nil
}

// minPartPercent is the shortest a part other than the last of its segment
// may be, in percent of PART-TARGET (Apple's HLS authoring spec).
const minPartPercent = 85

// The program date-time of a publication dated by the ingest (Unit.Wall)
// is kept wallMargin before the ingest's dates, and moves back only when a
// frame's date is more than wallAhead before the mapping, so that arrival
// jitter leaves it alone: a moved mapping moves the dates of the cues placed
// ahead of the live edge away from the media time they were placed at. It
// moves forward only when a whole segment's frames were dated more than
// wallSlew later than the mapping (a publisher's clock running slow).
//
// For the first wallSettle after the start the mapping stays, and what it
// would have needed is measured: a publisher that sends faster than real time past
// its start (a file pushed at twice its speed) is not live, and dated by
// arrival its program date-time would advance slower than its media, every
// cue placed ahead landing on a date later segments do not reach. When the
// window needed a move back of more than wallReplay of it, the mapping stays
// for good and the date follows the media clock; otherwise it makes that
// move once, and follows the ingest's dates from there.
const (
	wallMargin = 20 * time.Millisecond
	wallAhead  = 30 * time.Millisecond
	wallSlew   = 250 * time.Millisecond
	wallSettle = time.Second
	wallReplay = wallSettle / 10
)

// dateLead keeps the program date-time of the lead track's frames no later
// than the wall-clock time the ingest dated them by their arrival (within
// wallAhead), so that the live edge is not in the future (see wallMargin).
// A move shows only in the next segment's EXT-X-PROGRAM-DATE-TIME: RFC
// 8216bis 6.2.1 lets a server only append to a playlist, never change a
// listed segment's tags.
func (p *publication) dateLead(t *track, smp *sample, opening bool) {
	pts := t.duration(uint64(int64(smp.dts) + int64(smp.PTSOffset)))
	settling := p.unitAt.Sub(p.wallStart) < wallSettle
	if !settling && p.wallNeed >= 0 {
		if p.wallNeed > wallReplay {
			p.wallDated = false
			return
		}
		p.wallBase = p.wallBase.Add(-p.wallNeed)
		p.wallNeed = -1 // settled
	}
	if opening {
		if p.wallSlack > wallSlew && !settling {
			p.wallBase = p.wallBase.Add(p.wallSlack - wallMargin)
		}
		p.wallSlack = -1
	}
	margin := smp.wall.Sub(p.wallBase.Add(pts - p.mediaBase))
	if margin < -wallAhead {
		if settling {
			p.wallNeed = max(p.wallNeed, wallMargin-margin)
		} else {
			p.wallBase = p.wallBase.Add(margin - wallMargin)
			margin = wallMargin
		}
	}
	if p.wallSlack < 0 || margin < p.wallSlack {
		p.wallSlack = margin
	}
}

// closePart turns the pending samples into a published part.
func (p *publication) closePart() error {
	s := p.s
	if p.partLen == 0 || s.open == nil {
		return nil
	}
	first := len(s.open.parts) == 0
	if s.aligned() {
		s.padParts(p.partIdx)
		s.nextPart = s.open.msn*s.alignedParts() + int64(p.partIdx)
	}
	fp := fmp4.Part{SequenceNumber: uint32(s.nextPart + 1)}
	var leadDur uint64
	for _, t := range p.order {
		smps := p.pending[t]
		if len(smps) == 0 {
			continue
		}
		pt := &fmp4.PartTrack{ID: t.id, BaseTime: smps[0].dts}
		for _, smp := range smps {
			pt.Samples = append(pt.Samples, smp.Sample)
			if t == p.lead {
				leadDur += uint64(smp.Duration)
			}
		}
		fp.Tracks = append(fp.Tracks, pt)
		t.seal()
		s.tracksEnd = max(s.tracksEnd, t.end())
		p.pending[t] = smps[:0:0]
	}
	// Timed metadata (emsg) precedes the moof it applies to (ISO/IEC
	// 23009-1 5.10.3.3), in the part whose time range holds it; the parent
	// segment gets the same bytes.
	start := p.lead.duration(p.partStart)
	end := p.lead.duration(p.partStart + leadDur)
	boxes := s.partBoxes(start, end, first, p.lead.timescale)
	// The part in one allocation: the samples' bytes and a margin for the
	// moof, which gives a trun entry to each sample.
	size := len(boxes) + 1024
	for _, pt := range fp.Tracks {
		size += 64 + 16*len(pt.Samples)
		for _, smp := range pt.Samples {
			size += len(smp.Payload)
		}
	}
	var buf seekablebuffer.Buffer
	buf.Grow(size)
	_, _ = buf.Write(boxes)
	if err := fp.Marshal(&buf); err != nil {
		return fmt.Errorf("part: %w", err)
	}
	s.ts.writePart(s, p, fp.Tracks, start, end, first)
	dur := p.lead.duration(leadDur)
	if s.aligned() {
		// A part of the aligned timeline lasts its grid slot, whatever
		// frames this node got of it: every node lists the same durations,
		// and a part that lost frames at its end is not listed shorter
		// than Apple's 85% of PART-TARGET. Its samples keep their own
		// times (tfdt).
		dur = s.partGrid()
	}
	pa := &part{
		n:           s.nextPart,
		index:       len(s.open.parts),
		body:        buf.Bytes(),
		dur:         dur,
		independent: p.partKey,
		at:          time.Now(),
		pub:         p,
		from:        start,
		to:          end,
		seg:         s.open,
		boxes:       boxes,
	}
	for _, pt := range fp.Tracks {
		if pt.ID != p.lead.id {
			pa.shared = append(pa.shared, pt)
		}
	}
	p.partLen = 0
	s.open.media += p.lead.duration(leadDur)
	s.addPart(pa)
	s.stats.part(p.unitAt)
	for _, v := range s.variants {
		if vp := v.pub; vp != nil && vp.src == p {
			vp.follow(false)
		}
	}
	return nil
}

// flush publishes whatever the publisher sent last, ending the open segment.
func (p *publication) flush() {
	p.unitAt = time.Time{} // no unit completes this part: no lag to measure
	_ = p.closePart()
	p.s.closeSegment()
}

// WriteData implements ingest.Publication.
func (p *publication) WriteData(d *ingest.Data) {
	s := p.s
	on := s.m.cfg.OnData
	if on == nil {
		return
	}
	s.mu.Lock()
	if p.superseded || p.done {
		s.mu.Unlock()
		return
	}
	msg := s.dataMessage(p, d)
	s.mu.Unlock()
	on(s.name, msg)
}

// Close implements ingest.Publication.
func (p *publication) Close() {
	s := p.s
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.disconnect(p.done)
	if p.done || p.superseded {
		p.done = true
		return
	}
	p.done = true
	p.flush()
	s.sourceGone(p)
	s.detach(p)
}
