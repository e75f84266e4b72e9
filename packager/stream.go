package packager

import (
	"bytes"
	"context"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shopcast/shopcast/ingest"
	"github.com/shopcast/shopcast/internal/hlsname"
)

// DataMessage is a publisher data message (AMF onCuePoint, onTextData) placed
// on the stream's media timeline, as Config.OnData receives it.
type DataMessage struct {
	ingest.Data
	// MediaTime is where the message's timestamp falls on the media
	// timeline of the parts (the timeline of Event.Time).
	MediaTime time.Duration
}

// dataMessage places d, from publication p, on the media timeline: its
// timestamp through the lead track's clock once p started, else the end of
// the published media, where p's first frame will land. Called with s.mu
// held.
func (s *Stream) dataMessage(p *publication, d *ingest.Data) DataMessage {
	at := s.mediaEnd()
	if p.started {
		at = max(d.Time-p.lead.shift-p.origin+p.mediaBase, p.mediaBase)
	}
	return DataMessage{Data: *d, MediaTime: at}
}

// Stream is one named live stream: the segments, parts and playlists that
// viewers read, fed by one publication at a time.
type Stream struct {
	m    *Manager
	name string
	log  *slog.Logger

	// mu guards the stream: the publisher writes under Lock; viewers'
	// requests read under RLock, so a part's release wakes a thousand blocked
	// requests without queueing them one by one on a mutex.
	mu sync.RWMutex
	// renderMu makes one reader take a playlist version (and render the
	// DATERANGE lines it needs) while others wait for it.
	renderMu sync.Mutex
	changed  chan struct{} // closed and replaced whenever anything is published

	// rendition is the source's segments, parts and media playlist
	// caches; variants (variant.go) have one each. inits holds every
	// rendition's init segments, whose names differ.
	rendition
	variants []*variant // the ladder's other renditions, in order of arrival
	inits    map[string]*initFile
	nextMSN  int64
	nextPart int64
	// anchored tells that the aligned timeline (aligned.go) set nextMSN.
	anchored bool
	discNum  int64 // discontinuity sequence number of the last segment opened
	pubSeq   int64
	pub      *publication
	session  int64 // SegmentInfo.Session: pubSeq when the stream started
	ended    bool
	removed  bool
	grace    *time.Timer
	graceGen int
	linger   *time.Timer
	td       int // EXT-X-TARGETDURATION in seconds, fixed by the first segment
	version  int64
	mvCache  cachedPlaylist
	lastEnd  time.Duration
	// tracksEnd is the end of the latest sample published on any track:
	// audio may run ahead of the video that sets lastEnd.
	tracksEnd time.Duration
	openedAt  time.Time
	stats     *streamStats // counters for metrics (stats.go)

	eventTimeline
	ts tsRendition // the legacy MPEG-TS rendition (ts_rendition.go)
}

// rendition is one rendition's media: the complete segments still
// servable, the open segment, the parts by number and the media playlist
// renderings. The source's is the Stream's own; a variant's mirrors it,
// segment for segment and part for part (variant.go).
type rendition struct {
	variant string     // "" for the source
	segs    []*segment // complete segments still servable, oldest first
	open    *segment   // segment receiving parts
	parts   map[int64]*part
	cache   [3]cachedPlaylist // media playlists by Skip
}

// cachedPlaylist holds a playlist rendered for one version. Readers hold
// s.mu only for reading, so it is swapped atomically.
type cachedPlaylist struct{ p atomic.Pointer[rendered] }

// cached returns c's rendering for the current version. Called with s.mu
// held (for reading at least). Only take, which copies out of the stream
// what the playlist says, runs under the lock: the returned build makes the
// bytes (a playlist with a thousand date ranges is a megabyte) once the
// caller has let go of s.mu, so that the publisher's next frame, and the
// viewers blocked on the part it completes, never queue behind a render.
// build is nil when another request renders this version; either way the
// body is there once r.ready is closed.
func (s *Stream) cached(c *cachedPlaylist, take func() *draft) (r *rendered, build func()) {
	if r := c.p.Load(); r != nil && r.version == s.version {
		return r, nil
	}
	s.renderMu.Lock()
	defer s.renderMu.Unlock()
	if r := c.p.Load(); r != nil && r.version == s.version {
		return r, nil
	}
	d := take()
	r = &rendered{version: s.version, ready: make(chan struct{})}
	c.p.Store(r)
	return r, func() {
		r.body = d.bytes()
		r.gz = newLazyGzip(r.body)
		close(r.ready)
	}
}

// rendered is one version of a playlist; body and gz are set once ready
// is closed.
type rendered struct {
	version int64
	ready   chan struct{}
	body    []byte
	gz      *lazyGzip
}

// wait returns once the body is there: at once if it is, whatever ctx,
// else when another request made it or ctx ends.
func (r *rendered) wait(ctx context.Context) error {
	select {
	case <-r.ready:
		return nil
	default:
	}
	select {
	case <-r.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// draft is a playlist taken out of the stream under its lock: the text
// before and after its date ranges, and the date range lines, which the
// events keep rendered and so cost a reference each here.
type draft struct {
	head  []byte
	lines []string // EXT-X-DATERANGE tags, without newlines
	tail  []byte
}

// bytes assembles the playlist in one allocation.
func (d *draft) bytes() []byte {
	n := len(d.head) + len(d.tail)
	for _, l := range d.lines {
		n += len(l) + 1
	}
	out := make([]byte, 0, n)
	out = append(out, d.head...)
	for _, l := range d.lines {
		out = append(out, l...)
		out = append(out, '\n')
	}
	return append(out, d.tail...)
}

// lazyGzip compresses a playlist version once, on the first request that
// needs it, outside the stream's lock: a large playlist (many date ranges)
// must not hold up the publisher.
type lazyGzip struct {
	once sync.Once
	src  []byte
	out  []byte
}

func newLazyGzip(src []byte) *lazyGzip { return &lazyGzip{src: src} }

// get returns the compressed bytes. Call it without s.mu held.
func (g *lazyGzip) get(m *Manager) []byte {
	if g == nil {
		return nil
	}
	g.once.Do(func() { g.out = m.gzipBytes(g.src) })
	return g.out
}

func newStream(m *Manager, name string) *Stream {
	return &Stream{
		m:       m,
		name:    name,
		log:     m.log.With("stream", name),
		changed: make(chan struct{}),
		rendition: rendition{
			parts: map[int64]*part{},
		},
		inits:   map[string]*initFile{},
		version: 1,
		stats:   &streamStats{},
	}
}

// Name returns the stream's public name.
func (s *Stream) Name() string { return s.name }

// notify wakes every request blocked on this stream.
func (s *Stream) notify() {
	s.version++
	close(s.changed)
	s.changed = make(chan struct{})
}

// attach makes p the stream's publication, replacing any current one.
func (s *Stream) attach(info ingest.PublishInfo) (*publication, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return nil, ErrNotFound
	}
	p, err := newPublication(s, info, hlsname.Init(int64(s.pubSeq)))
	if err != nil {
		return nil, err
	}
	s.pubSeq++
	s.stats.publishes.Add(1)
	if old := s.pub; old != nil {
		old.flush()
		s.sourceGone(old)
		old.superseded = true
		s.log.Info("publisher replaced", "remote", info.Remote, "old_remote", old.info.Remote)
	}
	if s.grace != nil {
		s.grace.Stop()
		s.grace = nil
	}
	p.disc = len(s.segs) > 0
	if n := len(s.segs); n > 0 && s.aligned() && s.segs[n-1].init != nil && bytes.Equal(s.segs[n-1].init.body, p.init.body) {
		// The aligned timeline's media times run on across the gap (listed
		// with EXT-X-GAP), and the same encoder settings give the same
		// init section: no discontinuity, so that the discontinuity
		// sequence stays that of a redundant node that kept its publisher.
		p.disc = false
	}
	s.pub = p
	s.inits[p.init.name] = p.init
	s.notify()
	return p, nil
}

// detach is called when p's publisher left: the stream waits GracePeriod for
// a new publisher before it ends.
func (s *Stream) detach(p *publication) {
	if s.pub != p {
		return
	}
	s.pub = nil
	s.notify()
	s.graceGen++
	gen := s.graceGen
	s.grace = time.AfterFunc(s.m.cfg.GracePeriod, func() { s.end(gen) })
}

// end writes EXT-X-ENDLIST unless a publisher arrived since grace period gen
// started.
func (s *Stream) end(gen int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pub != nil || s.ended || gen != s.graceGen {
		return
	}
	s.ended = true
	s.log.Info("stream ended")
	s.streamEnded()
	s.notify()
	s.linger = time.AfterFunc(s.m.cfg.EndedLinger, func() { s.m.remove(s) })
}

// shutdown ends the stream at once (server shutdown).
func (s *Stream) shutdown() {
	s.mu.Lock()
	if s.pub != nil {
		s.pub.flush()
		s.sourceGone(s.pub)
		s.pub.superseded = true
		s.pub = nil
	}
	if s.grace != nil {
		s.grace.Stop()
	}
	if s.linger != nil {
		s.linger.Stop()
	}
	if !s.ended {
		s.streamEnded()
	}
	s.ended = true
	s.removed = true
	s.notify()
	s.mu.Unlock()
}

// mediaEnd is where the next publication's media timeline starts: right
// after everything published so far on every track, so media time never
// goes back.
func (s *Stream) mediaEnd() time.Duration {
	return max(s.lastEnd, s.tracksEnd)
}

func (s *Stream) openSegment(start time.Duration, pdt time.Time, init *initFile, disc bool) {
	if disc {
		s.discNum++
	}
	s.open = &segment{
		discNum: s.discNum,
		msn:     s.nextMSN,
		start:   start,
		pdt:     pdt,
		init:    init,
		disc:    disc,
	}
	s.nextMSN++
	s.openedAt = time.Now()
}

func (s *Stream) addPart(p *part) {
	s.open.parts = append(s.open.parts, p)
	s.open.dur += p.dur
	s.parts[p.n] = p
	s.nextPart++
	if end := s.open.start + s.open.dur; end > s.lastEnd {
		s.lastEnd = end
	}
	s.notify()
}

// closeSegment completes the open segment. Its bytes are its parts' bytes
// back to back, so a part and its parent segment carry identical samples.
func (s *Stream) closeSegment() {
	seg := s.open
	if seg == nil {
		return
	}
	if len(seg.parts) == 0 {
		s.open = nil
		s.nextMSN--
		return
	}
	if s.aligned() {
		// The slots no frame filled, up to the segment's grid end.
		s.padParts(int(s.alignedParts()))
		s.checkGOP(seg)
	}
	s.open = nil
	n := 0
	for _, p := range seg.parts {
		n += len(p.body)
	}
	seg.body = make([]byte, 0, n)
	for _, p := range seg.parts {
		off := len(seg.body)
		seg.body = append(seg.body, p.body...)
		// From now on the part is served from the segment's bytes (the same
		// bytes), so the stream keeps its media once: the part's own buffer
		// goes once no response holds it. Readers take p.body under s.mu.
		p.body = seg.body[off:len(seg.body):len(seg.body)]
	}
	seg.size = n
	seg.complete = true
	seg.at = time.Now()
	s.stats.segments.Add(1)
	if s.td == 0 {
		// EXT-X-TARGETDURATION must not change (RFC 8216bis 4.4.3.1): it is
		// fixed when the first segment shows the publisher's GOP. Half a
		// frame of margin keeps it above later segments that a rounded
		// timestamp makes a little longer (a 2.4999 s GOP is a 2.5 s one).
		margin := seg.dur / time.Duration(2*max(seg.frames, 1))
		s.td = max(int(math.Round(s.m.cfg.TargetDuration.Seconds())), int(math.Round((seg.dur + margin).Seconds())), 1)
	} else if int(math.Round(seg.dur.Seconds())) > s.td {
		s.log.Warn("segment longer than target duration: keyframe interval too long",
			"msn", seg.msn, "duration", seg.dur, "target", s.td)
	}
	s.segs = append(s.segs, seg)
	s.segmentDone(seg, "")
	s.trim()
	s.variantsSegmentDone(seg)
	s.ts.closeSegment(s, seg)
	s.notify()
}

// trim drops segments that left the playlist window long enough ago, and
// part bytes once their tags left the playlist (RFC 8216bis 6.2.2: keep them
// servable for a while after that).
func (s *Stream) trim() {
	keep := s.m.cfg.WindowSegments + s.m.cfg.RetainSegments
	for len(s.segs) > keep {
		old := s.segs[0]
		s.segs = s.segs[1:]
		for _, p := range old.parts {
			s.dropPart(p)
		}
		if old.init != s.segs[0].init && (s.pub == nil || s.pub.init != old.init) {
			delete(s.inits, old.init.name)
		}
	}
	// Part tags leave the playlist 3 target durations from the end at the
	// latest (draftMedia); their bytes stay servable for 3 more at least.
	limit := s.lastEnd - 6*s.tdDuration()
	for _, seg := range s.segs {
		if seg.start+seg.dur >= limit {
			break
		}
		for _, p := range seg.parts {
			s.dropPart(p)
		}
	}
}

// dropPart forgets a source part's bytes and what its variants' parts
// would have shared with it.
func (s *Stream) dropPart(p *part) {
	delete(s.parts, p.n)
	p.shared, p.boxes = nil, nil
}

func (s *Stream) tdDuration() time.Duration {
	if s.td == 0 {
		return s.m.cfg.TargetDuration
	}
	return time.Duration(s.td) * time.Second
}

// wait blocks, with s.mu read-locked on entry and on return, until cond holds, the
// context ends or the deadline passes. The packager wakes it: no polling.
func (s *Stream) wait(ctx context.Context, deadline <-chan time.Time, cond func() bool) error {
	for !cond() {
		if s.removed {
			return ErrNotFound
		}
		ch := s.changed
		s.mu.RUnlock()
		select {
		case <-ch:
			s.mu.RLock()
		case <-ctx.Done():
			s.mu.RLock()
			return ctx.Err()
		case <-deadline:
			s.mu.RLock()
			if cond() {
				return nil
			}
			return ErrUnavailable
		}
	}
	return nil
}
