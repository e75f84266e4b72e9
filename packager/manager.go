package packager

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shopcast/shopcast/ingest"
	"github.com/shopcast/shopcast/internal/hlsname"
)

// ErrTooManyStreams is returned by Publish when MaxStreams streams exist.
var ErrTooManyStreams = errors.New("too many streams")

// Config sets the packager's behaviour. Zero fields take their defaults.
type Config struct {
	// TargetDuration is the segment target duration. It defaults to 2s.
	TargetDuration time.Duration
	// PartTarget is the partial segment target duration. It defaults to 333ms.
	PartTarget time.Duration
	// WindowSegments is the number of segments in a media playlist; at least 6.
	// It defaults to 10.
	WindowSegments int
	// RetainSegments is how many segments stay servable after they leave the
	// playlist window, for viewers still fetching them. It defaults to 3.
	RetainSegments int
	// GracePeriod is how long a stream waits for its publisher to come back
	// before it ends with EXT-X-ENDLIST. It defaults to 30s.
	GracePeriod time.Duration
	// EndedLinger is how long an ended stream stays servable before its URLs
	// answer 404. It defaults to 30s.
	EndedLinger time.Duration
	// MaxStreams caps concurrent streams. It defaults to 100.
	MaxStreams int
	// MaxBlockedRequests caps blocking playlist and preload-hint requests
	// waiting at once across all streams. It defaults to 20000.
	MaxBlockedRequests int
	// MaxBlockedPerClient caps the blocked requests of one client address
	// (Request.Client), so that one client's flood cannot take the slots of
	// every other viewer. A viewer holds two at most (a playlist reload and
	// a preload-hint part), a CDN edge about that many per stream it
	// serves, a NAT'd office two per viewer behind it. It defaults to 500.
	MaxBlockedPerClient int
	// MaxBlockedPerStream caps the blocked requests of one stream, so that
	// the viewers of one stream cannot take every slot from the others. It
	// defaults to MaxBlockedRequests: no cap of its own.
	MaxBlockedPerStream int
	// OnStreamStart, when set, is called (in its own goroutine) each time a
	// stream starts afresh, so that stored timed metadata can be put back
	// on its timeline.
	OnStreamStart func(name string)
	// FirstNumbers gives a stream this manager does not hold yet its first
	// media sequence, discontinuity sequence, part and init-section numbers. After a restart they must exceed every number the stream
	// used before, or a CDN that cached the old session's seg5.m4s serves
	// it as the new session's seg5.m4s (RFC 8216bis 6.2.1: a segment's
	// Media Sequence Number never decreases, and a URI never names other
	// bytes). nil starts at 0, right for a packager whose streams never
	// outlive it (tests); the server sets WallClockNumbers.
	FirstNumbers func(stream string) Numbers
	// OnData, when set, is given each data message a publisher sends
	// (onCuePoint, onTextData), placed on the stream's media timeline. It
	// is called on the publisher's goroutine, without the stream's lock,
	// and must not block: media waits behind it.
	OnData func(stream string, msg DataMessage)
	// Hooks, when set, hand every completed segment, event placement and
	// stream end to a consumer such as the recorder (hooks.go). They
	// default to none.
	Hooks Hooks
	// MaxVariants caps the variants (renditions besides the source's) of
	// one stream; a publication of one more is refused. It defaults to 8.
	MaxVariants int
	// AlignedTimeline numbers segments and parts from program date-time
	// (aligned.go, docs/redundancy.md): every segment lasts TargetDuration,
	// which must be the encoder's fixed keyframe interval, so that nodes
	// fed the same encoder serve the same numbers for the same media. It
	// defaults to false: numbers count arrivals.
	AlignedTimeline bool
	// TimelineAnchor, when set on an aligned timeline, gives the media
	// sequence number of the segment that a publication whose first
	// keyframe arrived at wall time w starts, in place of the wall-clock
	// slot (floor((w - 2026-01-01)/TargetDuration)): a cluster can hand
	// every node the same anchor for a stream, so that arrivals on either
	// side of a slot boundary agree. It defaults to nil.
	TimelineAnchor func(stream string, w time.Time) int64
}

// Numbers are the first numbers of a stream.
type Numbers struct {
	// Sequence is the first media sequence number. Players parse it as an
	// integer, some as a 31-bit one (gohlslib refuses 2^31 and more).
	Sequence int64
	// Name is the first part and init-section number; those appear only in
	// URIs.
	Name int64
	// Discontinuity is the first discontinuity sequence number. It must be
	// small: hls.js walks an array up to it on every reload, so it cannot
	// come from the clock (the server keeps it in internal/discseq).
	Discontinuity int64
}

// numberEpoch is the origin of WallClockNumbers: counted in seconds from
// it, a media sequence number stays below 2^31 until 2094.
var numberEpoch = time.Date(2026, time.January, 1, 0, 0, 0, 0, time.UTC)

// WallClockNumbers numbers a new stream from the wall clock, so that a
// stream started after a restart is numbered after everything the crashed
// process served, with no state kept on disk. The media sequence counts
// seconds: a segment is at least a target duration (1 s or more) of media,
// so it advances slower than the clock while media arrives in real time. Part and init-section
// numbers count milliseconds, since parts are shorter. A publisher pushing
// media faster than real time for a whole stream's life, or a wall clock
// stepped back by more than the stream's age, breaks the rule.
func WallClockNumbers() Numbers {
	since := time.Since(numberEpoch)
	return Numbers{Sequence: int64(since / time.Second), Name: int64(since / time.Millisecond)}
}

func (c *Config) setDefaults() {
	if c.TargetDuration <= 0 {
		c.TargetDuration = 2 * time.Second
	}
	if c.PartTarget <= 0 {
		c.PartTarget = 333 * time.Millisecond
	}
	if c.WindowSegments <= 0 {
		c.WindowSegments = 10
	}
	// RFC 8216bis 6.2.2: a live playlist holds at least three target
	// durations; Apple's authoring spec asks for six segments.
	c.WindowSegments = max(c.WindowSegments, 6)
	if c.RetainSegments <= 0 {
		c.RetainSegments = 3
	}
	if c.GracePeriod <= 0 {
		c.GracePeriod = 30 * time.Second
	}
	if c.EndedLinger <= 0 {
		c.EndedLinger = 30 * time.Second
	}
	if c.MaxStreams <= 0 {
		c.MaxStreams = 100
	}
	if c.MaxBlockedRequests <= 0 {
		c.MaxBlockedRequests = 20000
	}
	if c.MaxBlockedPerClient <= 0 {
		c.MaxBlockedPerClient = 500
	}
	if c.MaxBlockedPerStream <= 0 {
		c.MaxBlockedPerStream = c.MaxBlockedRequests
	}
	if c.MaxVariants <= 0 {
		c.MaxVariants = 8
	}
}

// Manager holds every stream: it is the ingest Sink and the origin's Source.
type Manager struct {
	cfg Config
	log *slog.Logger

	blocked     atomic.Int64
	clientsMu   sync.Mutex
	clients     map[string]int // blocked requests per Request.Client
	gzipWriters sync.Pool      // *gzip.Writer

	mu      sync.Mutex
	streams map[string]*Stream
	closed  bool
}

// New returns a Manager.
func New(cfg Config, log *slog.Logger) *Manager {
	cfg.setDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Manager{cfg: cfg, log: log, streams: map[string]*Stream{}, clients: map[string]int{}}
}

// Config returns the configuration in effect, defaults filled in.
func (m *Manager) Config() Config { return m.cfg }

// Publish implements ingest.Sink.
func (m *Manager) Publish(info ingest.PublishInfo) (ingest.Publication, error) {
	if info.Variant != "" {
		return m.publishVariant(info)
	}
	// m.mu is held until the publication is attached: a stream cannot end
	// or be removed in between, and a stream is stored only once a
	// publication it accepted feeds it.
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrNotFound
	}
	s := m.streams[info.Name]
	fresh := s == nil
	var ended *Stream
	if s != nil && s.isEnded() {
		fresh = true
		// The stream ended after its grace period: a publisher coming back
		// now starts it afresh, numbered after the old one so that no URL
		// a CDN may still hold is reused.
		ended = s
		s = newStream(m, info.Name)
		ended.mu.Lock()
		s.nextMSN, s.nextPart, s.pubSeq, s.discNum = ended.nextMSN, ended.nextPart, ended.pubSeq, ended.discNum
		s.stats = ended.stats
		ended.mu.Unlock()
	}
	if s == nil {
		if len(m.streams) >= m.cfg.MaxStreams {
			return nil, fmt.Errorf("%w (max %d)", ErrTooManyStreams, m.cfg.MaxStreams)
		}
		s = newStream(m, info.Name)
		if m.cfg.FirstNumbers != nil {
			n := m.cfg.FirstNumbers(info.Name)
			s.nextMSN, s.discNum = max(n.Sequence, 0), max(n.Discontinuity, 0)
			if m.cfg.AlignedTimeline {
				// The first keyframe's slot sets it (aligned.go).
				s.nextMSN = 0
			}
			s.nextPart, s.pubSeq = max(n.Name, 0), max(n.Name, 0)
		}
	}
	if fresh {
		// A session is numbered like its first init section, so that it
		// never repeats for a name.
		s.session = s.pubSeq
	}
	p, err := s.attach(info)
	if err != nil {
		return nil, err
	}
	if ended != nil {
		ended.shutdown()
	}
	m.streams[info.Name] = s
	if fresh && m.cfg.OnStreamStart != nil {
		go m.cfg.OnStreamStart(info.Name)
	}
	s.log.Info("publisher started", "proto", info.Proto, "remote", info.Remote, "tracks", len(info.Tracks))
	return p, nil
}

func (s *Stream) isEnded() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ended
}

func (m *Manager) remove(s *Stream) {
	m.mu.Lock()
	if m.streams[s.name] == s {
		delete(m.streams, s.name)
	}
	m.mu.Unlock()
	s.shutdown()
	s.log.Info("stream removed")
}

// Stream returns the named stream.
func (m *Manager) Stream(name string) (*Stream, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.streams[name]
	return s, ok
}

// StreamNames returns the names of the streams, sorted.
func (m *Manager) StreamNames() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	names := make([]string, 0, len(m.streams))
	for n := range m.streams {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Close ends every stream and releases blocked requests.
func (m *Manager) Close() {
	m.mu.Lock()
	m.closed = true
	streams := m.streams
	m.streams = map[string]*Stream{}
	m.mu.Unlock()
	for _, s := range streams {
		s.shutdown()
	}
}

// Fetch returns a file of a stream, waiting for it when the request blocks.
func (m *Manager) Fetch(ctx context.Context, req Request) (*Response, error) {
	resp, err := m.fetch(ctx, req)
	if err != nil {
		return nil, err
	}
	if r := resp.playlist; r != nil {
		if resp.build != nil {
			resp.build()
		}
		if err := r.wait(ctx); err != nil {
			return nil, err
		}
		resp.Body = r.body
		if req.Gzip {
			resp.Gzip = r.gz.get(m)
		}
		resp.playlist, resp.build = nil, nil
	}
	return resp, nil
}

func (m *Manager) fetch(ctx context.Context, req Request) (*Response, error) {
	s, ok := m.Stream(req.Stream)
	if !ok {
		return nil, ErrNotFound
	}
	name, err := hlsname.Parse(req.File)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	switch name.Kind {
	case hlsname.KindMultivariant:
		return s.fetchMultivariant(ctx, req.Client)
	case hlsname.KindMedia:
		return s.fetchMedia(ctx, req, name.Variant)
	case hlsname.KindInit:
		// By the name as asked: an init segment is stored under the name
		// its playlists give it, so init00.mp4 is not init0.mp4.
		return s.fetchInit(req.File)
	case hlsname.KindSegment:
		return s.fetchSegment(name.N, name.Variant)
	case hlsname.KindPart:
		return s.fetchPart(ctx, req.Client, name.N, name.Variant)
	case hlsname.KindTSMultivariant, hlsname.KindTSMedia:
		return s.fetchTSPlaylist(ctx, req.Client, name.Kind)
	case hlsname.KindTSSegment:
		return s.fetchTSSegment(name.N)
	}
	return nil, ErrNotFound
}

// block accounts for one blocked request of client on stream st against
// MaxBlockedRequests, MaxBlockedPerStream and MaxBlockedPerClient. The
// per-client count takes a mutex, but only requests that must wait come
// here, a few a second per viewer.
func (m *Manager) block(st *streamStats, client string) (release func(), err error) {
	if m.blocked.Add(1) > int64(m.cfg.MaxBlockedRequests) {
		m.blocked.Add(-1)
		return nil, fmt.Errorf("%w: too many blocked requests", ErrUnavailable)
	}
	if st.blocked.Add(1) > int64(m.cfg.MaxBlockedPerStream) {
		st.blocked.Add(-1)
		m.blocked.Add(-1)
		return nil, fmt.Errorf("%w: too many blocked requests on this stream", ErrUnavailable)
	}
	if client != "" {
		m.clientsMu.Lock()
		n := m.clients[client]
		if n >= m.cfg.MaxBlockedPerClient {
			m.clientsMu.Unlock()
			st.blocked.Add(-1)
			m.blocked.Add(-1)
			return nil, fmt.Errorf("%w: too many blocked requests from one client", ErrUnavailable)
		}
		m.clients[client] = n + 1
		m.clientsMu.Unlock()
	}
	return func() {
		if client != "" {
			m.clientsMu.Lock()
			if n := m.clients[client] - 1; n > 0 {
				m.clients[client] = n
			} else {
				// Deleted at zero, so the map holds only clients waiting now.
				delete(m.clients, client)
			}
			m.clientsMu.Unlock()
		}
		st.blocked.Add(-1)
		m.blocked.Add(-1)
	}, nil
}

// Blocked returns the number of requests waiting now.
func (m *Manager) Blocked() int64 { return m.blocked.Load() }
