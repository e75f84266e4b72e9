package cues

import (
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/shopcast/shopcast/packager"
)

// Timeline places events in live streams. The packager.Manager implements
// it. Errors: packager.ErrNotFound for a stream that does not exist,
// packager.ErrEventExists for an id the stream already has.
type Timeline interface {
	// AddEvent places ev in stream and returns where it landed.
	AddEvent(stream string, ev packager.Event) (packager.EventTime, error)
	// EndEvent ends event id now: the packager sends the event's End in
	// band, and the DATERANGE gets its END-DATE. For an event whose start
	// is still ahead it cancels the event instead and returns a zero
	// EventTime (or one not after the start).
	EndEvent(stream, id string) (packager.EventTime, error)
	// HasStream reports whether stream is live.
	HasStream(stream string) bool
}

// Service keeps the cues of every stream: it places them on the Timeline
// and records them in the Store, whoever asks (the HTTP API, the schedule
// file, a publisher's onCuePoint), and puts them back when a stream
// restarts. The wiring hands StreamStarted to the packager
// (packager.Config.OnStreamStart).
type Service struct {
	// Store keeps the cues. Required.
	Store *Store
	// Timeline places cues in streams. Required before the first stream
	// starts.
	Timeline Timeline
	// Logger receives the service's logs. It defaults to slog.Default().
	Logger *slog.Logger
	// DataQueue is how many publisher cues (PublisherData) may wait to be
	// placed; more are dropped and logged. It defaults to 64.
	DataQueue int

	once sync.Once
	now  func() time.Time // tests replace it
	// started is when the service started: pending cues older than it were
	// left by a previous process.
	started time.Time

	schedMu  sync.Mutex
	schedule []*Cue

	data publisherData
}

// Start applies the defaults. The other methods call it if the wiring did
// not.
func (s *Service) Start() {
	s.once.Do(func() {
		if s.Logger == nil {
			s.Logger = slog.Default()
		}
		if s.now == nil {
			s.now = time.Now
		}
		if s.DataQueue <= 0 {
			s.DataQueue = 64
		}
		s.started = s.now()
	})
}

// Place reserves c's id in the store, has the packager place it and records
// where it landed: when it returns nil, the cue is in the stream and on
// disk. It returns ErrIDUsed for an id the stream has used, and
// packager.ErrNotFound for a stream that is not live.
func (s *Service) Place(stream string, c *Cue) (Record, error) {
	s.Start()
	rec, err := s.Store.Reserve(stream, c, s.now())
	if err != nil {
		return Record{}, err
	}
	id := rec.Cue.ID
	ev, err := NewEvent(&rec.Cue, rec.Seq)
	if err != nil {
		return Record{}, errors.Join(err, s.Store.Release(stream, id))
	}
	at, err := s.Timeline.AddEvent(stream, ev)
	if err != nil {
		if errors.Is(err, packager.ErrEventExists) {
			// The packager has the id already, so players may have seen
			// it: it stays used.
			_, ferr := s.Store.Finish(stream, id, StateFailed, packager.EventTime{}, s.now())
			return Record{}, errors.Join(ErrIDUsed, ferr)
		}
		return Record{}, errors.Join(err, s.Store.Release(stream, id))
	}
	return s.Store.Place(stream, id, at, s.now())
}

// End ends the cue of rec now if it is active (players get its END event
// and the DATERANGE an END-DATE) or cancels it if it is scheduled, and
// records that. A stream that is gone changes only the store.
func (s *Service) End(stream string, rec *Record) (Record, error) {
	s.Start()
	id := rec.Cue.ID
	st := rec.StateAt(s.now())
	end, err := s.Timeline.EndEvent(stream, id)
	gone := errors.Is(err, packager.ErrNotFound) // stream or event gone
	if err != nil && !gone {
		return Record{}, err
	}
	state := StateEnded
	switch {
	case st == StateScheduled && (gone || end.Wall.IsZero()):
		state = StateCancelled
	case !end.Wall.IsZero() && !end.Wall.After(rec.Start):
		state = StateCancelled // the packager had not started it yet
	}
	if state == StateCancelled {
		end = packager.EventTime{}
	}
	return s.Store.Finish(stream, id, state, end, s.now())
}

// StreamStarted is called by the packager when a stream starts or
// restarts (packager.Config.OnStreamStart). It puts the stream's stored
// scheduled and active cues back on the Timeline (after a restart of the
// server or of the stream; cues the packager still has are left alone),
// then places the schedule's cues the stream has not had yet. It blocks
// while it writes to the store.
func (s *Service) StreamStarted(stream string) {
	s.Start()
	log := s.Logger.With("stream", stream)
	recs, err := s.Store.OpenCues(stream)
	if err != nil {
		log.Error("cue store failed", "err", err)
	}
	for i := range recs {
		if err := s.restore(stream, &recs[i]); err != nil {
			log.Error("cue not restored", "cue", recs[i].Cue.ID, "err", err)
		}
	}

	s.schedMu.Lock()
	sched := s.schedule
	s.schedMu.Unlock()
	for _, sc := range sched {
		if _, err := s.Store.Get(stream, sc.ID); !errors.Is(err, ErrCueNotFound) {
			continue // placed at an earlier start, or the store failed
		}
		c := *sc
		rec, err := s.Place(stream, &c)
		switch {
		case errors.Is(err, ErrIDUsed):
		case err != nil:
			log.Error("scheduled cue not placed", "cue", c.ID, "err", err)
		default:
			log.Info("scheduled cue placed", "cue", c.ID, "media_ms", rec.Media.Milliseconds())
		}
	}
}

// restore re-adds one stored cue to the Timeline.
func (s *Service) restore(stream string, rec *Record) error {
	now := s.now()
	if rec.State == StatePending {
		// A reservation whose POST never finished: the server stopped
		// between reserving the id and placing the cue. It was never
		// acknowledged; the id stays used.
		if rec.Created.Before(s.started) {
			_, err := s.Store.Finish(stream, rec.Cue.ID, StateFailed, packager.EventTime{}, now)
			return err
		}
		return nil
	}
	c := rec.Cue
	switch rec.StateAt(now) {
	case StateScheduled:
		c.At = At{Kind: AtWall, Wall: rec.Start}
	case StateActive:
		// Re-sent from now for the rest of its duration, so that viewers
		// of the restarted stream see it (late join).
		c.At = At{Kind: AtNow}
		if !rec.End.IsZero() {
			left := rec.End.Sub(now)
			c.DurationMs = int64((left + time.Millisecond - 1) / time.Millisecond)
			if c.DurationMs <= 0 {
				return nil
			}
		}
	default:
		return nil
	}
	ev, err := NewEvent(&c, rec.Seq)
	if err != nil {
		return err
	}
	at, err := s.Timeline.AddEvent(stream, ev)
	if errors.Is(err, packager.ErrEventExists) {
		return nil // the packager kept it across the stream's restart
	}
	if err != nil {
		return err
	}
	_, err = s.Store.Replace(stream, rec.Cue.ID, at, s.now())
	return err
}
