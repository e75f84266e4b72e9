package packager

import "time"

// Hooks hand what a stream published to a consumer downstream of the
// packager (the recorder), as data: the segment bytes live viewers get,
// the init section they need, the events as placed, and the end of the
// stream. Each is called with the stream's lock held, in the order things
// happened on the stream, so the consumer sees one consistent timeline; it
// must therefore return at once and never block (take the data, queue it,
// drop it when its queue is full). It may keep every slice it is given:
// they never change once published.
type Hooks struct {
	// OnSegment is called when a segment completes.
	OnSegment func(SegmentInfo)
	// OnEvent is called when an event is placed (its start, and its end
	// when it has a Duration), ended or cancelled.
	OnEvent func(EventInfo)
	// OnStreamEnd is called when a stream ends: its grace period ran out
	// with no publisher, or the packager closed.
	OnStreamEnd func(StreamEnd)
}

// SegmentInfo is a complete segment, as Hooks.OnSegment receives it.
type SegmentInfo struct {
	Stream string
	// Variant is the rendition: "" for the source, else the variant's name
	// (its files are hlsname's Variant* names). A variant's segment MSN
	// covers the media time of the source's segment MSN, which it follows
	// (the source's is handed over first); a variant has no segment for a
	// source segment it could not fill.
	Variant string
	// Session identifies one life of the stream: a publisher returning
	// within the grace period continues it (Discontinuity), one arriving
	// after the stream ended starts a new session.
	Session int64
	// MSN is the segment's media sequence number: its file is seg{MSN}.m4s.
	MSN int64
	// Discontinuity is set on the first segment of a publication that
	// continued the session (EXT-X-DISCONTINUITY before it);
	// DiscontinuitySequence is the live playlist's count of them.
	Discontinuity         bool
	DiscontinuitySequence int64
	// PDT is the segment's EXT-X-PROGRAM-DATE-TIME and Start the media
	// time of its first sample; Duration its EXTINF.
	PDT      time.Time
	Start    time.Duration
	Duration time.Duration
	// Frames is the lead track's frame count, for FRAME-RATE.
	Frames int
	// TargetDuration is the live playlist's EXT-X-TARGETDURATION, seconds.
	TargetDuration int
	// Body is the segment: the very slice live viewers are served.
	Body []byte
	// Init is its initialization section (EXT-X-MAP).
	Init InitInfo
}

// InitInfo is an fMP4 initialization section.
type InitInfo struct {
	// Name is its file name (init{N}.mp4) and Body its bytes, the live ones.
	Name string
	Body []byte
	// Codecs are the RFC 6381 codec strings of its tracks, in track order,
	// as the live multivariant playlist lists them.
	Codecs []string
	// Width and Height are the video track's picture size (0 without one).
	Width, Height int
}

// EventInfo is an event on a stream's timeline, as Hooks.OnEvent receives
// it each time its placement changes.
type EventInfo struct {
	Stream  string
	Session int64
	// Event is the event as added: its framing data (ID3, DATERANGE).
	Event Event
	// Start is where it landed; End where it ends, zero while open. The
	// live playlists' DATERANGE is Event.DateRangeTag(Start.Wall, End.Wall).
	Start, End EventTime
	// Cancelled is set when a scheduled event was ended before it began:
	// it left the playlists.
	Cancelled bool
}

// StreamEnd says that a stream's session ended (EXT-X-ENDLIST).
type StreamEnd struct {
	Stream  string
	Session int64
}

// segmentDone hands a completed segment of the source (variant "") or of
// a variant to Hooks.OnSegment. Called with s.mu held.
func (s *Stream) segmentDone(seg *segment, variant string) {
	on := s.m.cfg.Hooks.OnSegment
	if on == nil {
		return
	}
	init := InitInfo{Name: seg.init.name, Body: seg.init.body}
	for _, c := range seg.init.codecs {
		if v := codecString(c); v != "" {
			init.Codecs = append(init.Codecs, v)
		}
		if c.IsVideo() && init.Width == 0 {
			init.Width, init.Height = resolution(c)
		}
	}
	on(SegmentInfo{
		Stream:                s.name,
		Variant:               variant,
		Session:               s.session,
		MSN:                   seg.msn,
		Discontinuity:         seg.disc,
		DiscontinuitySequence: seg.discNum,
		PDT:                   seg.pdt,
		Start:                 seg.start,
		Duration:              seg.dur,
		Frames:                seg.frames,
		TargetDuration:        s.td,
		Body:                  seg.body,
		Init:                  init,
	})
}

// eventChanged hands an event's placement to Hooks.OnEvent. Nothing is
// sent once the stream ended: its recording is closed. Called with s.mu
// held.
func (s *Stream) eventChanged(es *eventState) {
	on := s.m.cfg.Hooks.OnEvent
	if on == nil || s.ended || es.pendingNow {
		return
	}
	info := EventInfo{
		Stream:    s.name,
		Session:   s.session,
		Event:     es.ev,
		Start:     EventTime{Media: es.media, Wall: es.wall},
		Cancelled: es.cancelled,
	}
	if es.end != 0 && !es.cancelled {
		info.End = EventTime{Media: es.end, Wall: s.mediaToWall(es.end)}
	}
	on(info)
}

// streamEnded tells Hooks.OnStreamEnd. Called with s.mu held, once, as
// s.ended is set.
func (s *Stream) streamEnded() {
	if on := s.m.cfg.Hooks.OnStreamEnd; on != nil {
		on(StreamEnd{Stream: s.name, Session: s.session})
	}
}
