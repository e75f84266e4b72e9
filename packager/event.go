package packager

import (
	"errors"
	"fmt"
	"time"
)

// ErrEventExists is returned by AddEvent for an id the stream already used.
var ErrEventExists = errors.New("event id already used")

// Event is timed metadata carried in the stream: in-band as an emsg box in
// the part (and segment) whose time range holds it and as an ID3 PES in
// the MPEG-TS rendition, and in every media playlist as an EXT-X-DATERANGE
// while it overlaps the window.
//
// It is plain data: the packager frames the emsg boxes, the PES and the
// tag lines from it, so that an event can be stored, sent to another node
// or read back for a recording and give the same bytes there. AddEvent
// keeps its byte slices: they must not change afterwards.
type Event struct {
	// ID identifies the event in the stream; never reused.
	ID string `json:"id"`
	// Now places the event on the next frame that reaches the packager;
	// otherwise Time (media time) or, when Time is negative, Wall (mapped
	// through EXT-X-PROGRAM-DATE-TIME) places it.
	Now  bool          `json:"now,omitempty"`
	Time time.Duration `json:"time"`
	Wall time.Time     `json:"wall,omitzero"`
	// Duration is how long the event lasts; zero means until ended.
	Duration time.Duration `json:"duration,omitempty"`
	// ID3 is the ID3v2 tag of the event's start: the message_data of its
	// emsg box and the payload of its TS ID3 PES, the same bytes in both.
	// Nil: the event has no in-band start.
	ID3 []byte `json:"id3,omitempty"`
	// EmsgID is the id of the start's emsg box. A viewer joining later gets
	// the start again at a segment start, in a box with the same id.
	EmsgID uint32 `json:"emsg_id"`
	// End is the in-band message of an explicit end (EndEvent).
	End EventEnd `json:"end,omitzero"`
	// DateRange, when set, lists the event in the media playlists.
	DateRange *DateRange `json:"daterange,omitempty"`
}

// EventEnd is the in-band message sent when an event is ended explicitly,
// before its Duration ran out: an emsg box with event_duration 0 in fMP4,
// an ID3 PES in TS.
type EventEnd struct {
	// ID3 is the tag of the end; nil sends no in-band end (the DATERANGE
	// still gets its END-DATE).
	ID3 []byte `json:"id3,omitempty"`
	// EmsgID is the id of the end's emsg box.
	EmsgID uint32 `json:"emsg_id"`
}

// EventTime is where an event landed on the stream's timelines.
type EventTime struct {
	// Media is the media time (the tfdt/PTS timeline of the fMP4 parts).
	Media time.Duration
	// Wall is the EXT-X-PROGRAM-DATE-TIME of that media time.
	Wall time.Time
}

// eventFrames is what the packager frames of an event before its placement
// is known, once, outside the stream's lock: the emsg boxes with their
// time fields zero and the DATERANGE line without its dates.
type eventFrames struct {
	start, end     emsgTmpl // nil without ID3
	drHead, drTail string
}

func newEventFrames(ev *Event) (eventFrames, error) {
	var f eventFrames
	var err error
	if ev.ID3 != nil {
		if f.start, err = newEmsgTemplate(ev.EmsgID, ev.ID3); err != nil {
			return f, err
		}
	}
	if ev.End.ID3 != nil {
		if f.end, err = newEmsgTemplate(ev.End.EmsgID, ev.End.ID3); err != nil {
			return f, err
		}
	}
	if ev.DateRange != nil {
		if err := ev.DateRange.check(); err != nil {
			return f, err
		}
		f.drHead, f.drTail = dateRangeParts(ev.ID, ev.DateRange)
	}
	return f, nil
}

// eventState is an event on a stream's timeline.
type eventState struct {
	ev     Event
	frames eventFrames
	media  time.Duration // resolved start (media time)
	wall   time.Time     // its program date-time
	end    time.Duration // resolved end; 0 while open-ended
	// explicitEnd is an end set by EndEvent, whose in-band message is
	// placed once like a start.
	explicitEnd bool
	resolved    chan struct{} // closed once a "now" event has its frame
	placed      bool          // start emsg written into a part
	endPlaced   bool
	// tsPlaced records which of its ID3 PES (tsPlacedStart, tsPlacedEnd)
	// the TS rendition carries, as placed and endPlaced do for emsg.
	tsPlaced   uint8
	cancelled  bool
	pendingNow bool
	// box is the start emsg built for boxTimescale and boxAt.
	box          []byte
	boxTimescale uint32
	boxAt        uint64
	// drLine is the rendered EXT-X-DATERANGE for end drFor.
	drLine  string
	drFor   time.Duration
	drValid bool
}

// nowWait bounds how long AddEvent waits for the next frame of a "now"
// event before it falls back to the end of the published media.
const nowWait = time.Second

// HasStream reports whether a stream exists.
func (m *Manager) HasStream(name string) bool {
	_, ok := m.Stream(name)
	return ok
}

// AddEvent places an event on a stream's timeline: at the next frame that
// reaches the packager (Now), at a media time, or at a wall-clock time
// mapped through EXT-X-PROGRAM-DATE-TIME. Future events are announced in
// the playlist (EXT-X-DATERANGE) ahead of their start. An event the
// packager cannot frame is refused with an error wrapping ErrInvalidEvent.
func (m *Manager) AddEvent(stream string, ev Event) (EventTime, error) {
	s, ok := m.Stream(stream)
	if !ok {
		return EventTime{}, ErrNotFound
	}
	return s.AddEvent(ev)
}

// EndEvent ends an event now: its End goes into the next part and the
// DATERANGE gets its END-DATE. A scheduled event that has not started is
// cancelled instead and leaves the playlist.
func (m *Manager) EndEvent(stream, id string) (EventTime, error) {
	s, ok := m.Stream(stream)
	if !ok {
		return EventTime{}, ErrNotFound
	}
	return s.EndEvent(id)
}

// AddEvent implements Manager.AddEvent on one stream.
func (s *Stream) AddEvent(ev Event) (EventTime, error) {
	// Framed before the lock: the publisher's next frame and the viewers
	// waiting on its part do not queue behind an event's bytes.
	es, err := newEventState(ev)
	if err != nil {
		return EventTime{}, err
	}
	s.mu.Lock()
	err = s.addEvent(es)
	if err != nil {
		s.mu.Unlock()
		return EventTime{}, err
	}
	if !es.pendingNow {
		at := EventTime{Media: es.media, Wall: es.wall}
		s.mu.Unlock()
		return at, nil
	}
	// The event lands on the next frame: wait for it (a frame interval).
	ch := es.resolved
	s.mu.Unlock()
	select {
	case <-ch:
		// The frame path resolved it under s.mu before closing ch, and the
		// part holding that frame will announce it. Taking s.mu again here
		// would queue this goroutine, as a writer, ahead of the viewers
		// blocked on that very part.
		return EventTime{Media: es.media, Wall: es.wall}, nil
	case <-time.After(nowWait):
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if es.pendingNow {
		s.resolve(es, s.lastEnd)
		s.notify()
	}
	return EventTime{Media: es.media, Wall: es.wall}, nil
}

// newEventState frames ev, before the stream's lock is taken.
func newEventState(ev Event) (*eventState, error) {
	if ev.ID == "" {
		return nil, fmt.Errorf("%w: no id", ErrInvalidEvent)
	}
	f, err := newEventFrames(&ev)
	if err != nil {
		return nil, err
	}
	return &eventState{ev: ev, frames: f}, nil
}

// addEvent registers es. A "now" event on a started publication is left
// pending (es.pendingNow, es.resolved) for the next frame; any other is
// resolved and announced. Called with s.mu held.
func (s *Stream) addEvent(es *eventState) error {
	ev := es.ev
	if s.ended || s.removed {
		return ErrNotFound
	}
	if s.eventIDs[ev.ID] {
		return ErrEventExists
	}
	if s.eventIDs == nil {
		s.eventIDs = map[string]bool{}
	}
	s.eventIDs[ev.ID] = true
	s.events = append(s.events, es)
	s.live = append(s.live, es)
	switch {
	case ev.Now && s.pub != nil && s.pub.started:
		es.pendingNow = true
		es.resolved = make(chan struct{})
		s.nowPending = append(s.nowPending, es)
		return nil
	case ev.Now:
		s.resolve(es, s.lastEnd)
	case ev.Time >= 0:
		s.resolve(es, ev.Time)
	default:
		s.resolve(es, s.wallToMedia(ev.Wall))
	}
	s.notify()
	return nil
}

// EndEvent implements Manager.EndEvent on one stream.
func (s *Stream) EndEvent(id string) (EventTime, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var es *eventState
	for _, e := range s.events {
		if e.ev.ID == id {
			es = e
		}
	}
	if es == nil || es.cancelled {
		return EventTime{}, ErrNotFound
	}
	now := s.lastEnd
	if es.media >= now && !es.placed {
		// Not started yet: cancel it.
		es.cancelled = true
		es.end = now
		s.eventChanged(es)
		s.notify()
		return EventTime{Media: es.media, Wall: es.wall}, nil
	}
	if es.end == 0 || es.end > now {
		es.end = max(now, es.media)
		es.explicitEnd = true
	}
	s.eventChanged(es)
	s.notify()
	return EventTime{Media: es.end, Wall: s.mediaToWall(es.end)}, nil
}

// resolveNow gives pending "now" events the time of the frame that just
// arrived. Called with s.mu held.
func (s *Stream) resolveNow(media time.Duration) {
	if len(s.nowPending) > 0 && s.aligned() {
		// On the aligned timeline "now" is the next part slot's start:
		// two nodes that got the same POST within one part agree on it.
		if g := s.partGrid(); media%g != 0 {
			media += g - media%g
		}
	}
	for _, es := range s.nowPending {
		if es.pendingNow {
			s.resolve(es, media)
			close(es.resolved)
		}
	}
	clear(s.nowPending)
	s.nowPending = s.nowPending[:0]
}

// resolve fixes where an event starts: its media time, its program
// date-time and its end. It runs under s.mu before anything renders the
// event: a "now" event becomes visible to playlists when the frame that
// resolves it is published, which can be before AddEvent wakes up, so its
// START-DATE and end must be known here. Called with s.mu held.
func (s *Stream) resolve(es *eventState, media time.Duration) {
	es.pendingNow = false
	es.media = media
	es.wall = s.mediaToWall(media)
	if es.ev.Duration > 0 {
		es.end = media + es.ev.Duration
	}
	s.eventChanged(es)
}

// mediaToWall maps a media time to its program date-time through the
// segment holding it, or the current publication's clock.
func (s *Stream) mediaToWall(media time.Duration) time.Time {
	if s.aligned() {
		return numberEpoch.Add(media)
	}
	for i := len(s.segs) - 1; i >= 0; i-- {
		seg := s.segs[i]
		if media >= seg.start {
			if s.open == nil || i < len(s.segs)-1 || media < seg.start+seg.dur {
				return seg.pdt.Add(media - seg.start)
			}
			break
		}
	}
	if s.open != nil && media >= s.open.start {
		return s.open.pdt.Add(media - s.open.start)
	}
	if s.pub != nil && s.pub.started {
		return s.pub.wallBase.Add(media - s.pub.mediaBase)
	}
	if n := len(s.segs); n > 0 {
		return s.segs[n-1].pdt.Add(media - s.segs[n-1].start)
	}
	return time.Now().Add(media - s.lastEnd)
}

// wallToMedia maps a wall-clock time to media time, the inverse of
// mediaToWall.
func (s *Stream) wallToMedia(wall time.Time) time.Duration {
	if s.aligned() {
		return wall.Sub(numberEpoch)
	}
	for i := len(s.segs) - 1; i >= 0; i-- {
		seg := s.segs[i]
		if !wall.Before(seg.pdt) {
			return seg.start + wall.Sub(seg.pdt)
		}
	}
	if s.open != nil {
		return s.open.start + wall.Sub(s.open.pdt)
	}
	if s.pub != nil && s.pub.started {
		return s.pub.mediaBase + wall.Sub(s.pub.wallBase)
	}
	return s.lastEnd + time.Until(wall)
}

// partBoxes returns the emsg boxes of the part covering media time
// [start, end): the events that start or end in it (or earlier and were not
// carried yet) and, in the first part of a segment, every active event again
// so that a viewer joining at that segment sees it. Called with s.mu held.
func (s *Stream) partBoxes(start, end time.Duration, firstOfSegment bool, timescale uint32) []byte {
	if firstOfSegment {
		s.trimEvents(start)
	}
	s.pruneLive(start)
	var out []byte
	ticks := func(d time.Duration) uint64 {
		// Seconds and microseconds apart: the aligned timeline's media
		// times (from 2026) would overflow int64 in one product.
		us := int64(d) / int64(time.Microsecond)
		return uint64(us/1e6*int64(timescale) + us%1e6*int64(timescale)/1e6)
	}
	for _, es := range s.live {
		if es.cancelled || es.pendingNow {
			continue
		}
		active := es.media < end && (es.end == 0 || es.end > start)
		if (!es.placed && es.media < end) || (firstOfSegment && active && es.placed) {
			// The start box is re-sent at every segment start while the
			// event is active: build it once.
			pt := ticks(es.media)
			if es.box == nil || es.boxTimescale != timescale || es.boxAt != pt {
				b, err := es.frames.startBox(es.ev.Duration, timescale, pt)
				if err != nil {
					s.log.Warn("event box", "id", es.ev.ID, "err", err)
				}
				es.box, es.boxTimescale, es.boxAt = b, timescale, pt
			}
			out = append(out, es.box...)
			es.placed = true
		}
		if es.explicitEnd && !es.endPlaced && es.end < end {
			if b, err := es.frames.endBox(timescale, ticks(es.end)); err == nil {
				out = append(out, b...)
			}
			es.endPlaced = true
		}
	}
	return out
}

// pruneLive drops from s.live the events no part from media time start on
// carries: cancelled ones, and those whose boxes are all placed and that
// ended by start (parts only move forward). Called with s.mu held.
func (s *Stream) pruneLive(start time.Duration) {
	kept := s.live[:0]
	for _, es := range s.live {
		done := es.placed && (!es.explicitEnd || es.endPlaced) && es.end != 0 && es.end <= start
		if !es.cancelled && !done {
			kept = append(kept, es)
		}
	}
	clear(s.live[len(kept):])
	s.live = kept
}

// eventTimeline is the events of a stream, embedded in Stream.
type eventTimeline struct {
	events   []*eventState
	eventIDs map[string]bool // every id ever used on the stream
	// nowPending is the "now" events waiting for a frame, so that frames
	// do not look through every event of the window for them.
	nowPending []*eventState
	// live is the events a part may still carry, in order of events: not
	// placed yet, or active. Parts look through these (a few dozen at 50
	// cues/s), not through the thousand a playlist window lists.
	live []*eventState
}

// dateRanges returns the EXT-X-DATERANGE tags of the events that overlap
// the playlist from media time from on, leaving out those starting before
// skipBefore. Called with s.mu held and renderMu held.
func (s *Stream) dateRanges(from, skipBefore time.Duration) []string {
	var out []string
	for _, es := range s.events {
		if !s.inDateRanges(es, from, skipBefore) {
			continue
		}
		// A line changes only when the event's end does: render it once
		// per end, not once per playlist version.
		if !es.drValid || es.drFor != es.end {
			var end time.Time
			if es.end != 0 {
				end = s.mediaToWall(es.end)
			}
			es.drLine = renderDateRange(es.frames.drHead, es.frames.drTail, es.wall, end, es.ev.Duration)
			es.drFor, es.drValid = es.end, true
		}
		out = append(out, es.drLine)
	}
	return out
}

// inDateRanges reports whether es has a date range in a playlist from media
// time from on that leaves out those starting before skipBefore.
func (s *Stream) inDateRanges(es *eventState, from, skipBefore time.Duration) bool {
	return !es.cancelled && !es.pendingNow && es.ev.DateRange != nil &&
		(es.end == 0 || es.end > from) && es.media >= skipBefore
}

// removedDateRanges returns the ids of events whose date ranges left the
// playlist (they ended before its start, or were cancelled) within the last
// skip boundary. Called with s.mu held.
func (s *Stream) removedDateRanges(windowStart time.Duration) []string {
	var ids []string
	for _, es := range s.events {
		gone := es.cancelled || (es.end != 0 && es.end <= windowStart)
		if gone && (es.end == 0 || es.end > windowStart-s.skipUntil()) {
			ids = append(ids, es.ev.ID)
		}
	}
	return ids
}

// trimEvents forgets events that ended long before media time now: their
// date ranges left every playlist and every delta update. Their ids stay
// used.
func (s *Stream) trimEvents(now time.Duration) {
	horizon := now - time.Duration(s.m.cfg.WindowSegments+s.m.cfg.RetainSegments)*s.tdDuration() - s.skipUntil()
	kept := s.events[:0]
	for _, es := range s.events {
		if es.end != 0 && es.end < horizon {
			continue
		}
		kept = append(kept, es)
	}
	clear(s.events[len(kept):])
	s.events = kept
}
