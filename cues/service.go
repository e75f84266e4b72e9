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

// CueStore keeps the cues of every stream for the Service: the bbolt Store
// on a single node, the JetStream ClusterStore in a cluster. Every write
// returns once it is durable (fsynced, or acknowledged by the cluster), so
// what the API acknowledged survives a crash. The methods are the Store's;
// its documentation gives their rules.
type CueStore interface {
	Reserve(stream string, c *Cue, now time.Time) (Record, error)
	Place(stream, id string, at packager.EventTime, now time.Time) (Record, error)
	Replace(stream, id string, at packager.EventTime, now time.Time) (Record, error)
	Finish(stream, id string, state State, end packager.EventTime, now time.Time) (Record, error)
	Release(stream, id string) error
	Get(stream, id string) (Record, error)
	Known(stream string) bool
	OpenCues(stream string) ([]Record, error)
}

// Service keeps the cues of every stream: it places them on the Timeline
// and records them in the Store, whoever asks (the HTTP API, the schedule
// file, a publisher's onCuePoint), and puts them back when a stream
// restarts. The wiring hands StreamStarted to the packager
// (packager.Config.OnStreamStart).
type Service struct {
	// Store keeps the cues. Required.
	Store CueStore
	// Timeline places cues in streams. Required before the first stream
	// starts.
	Timeline Timeline
	// Logger receives the service's logs. It defaults to slog.Default().
	Logger *slog.Logger
	// DataQueue is how many publisher cues (PublisherData) may wait to be
	// placed; more are dropped and logged. It defaults to 64.
	DataQueue int

	// Tally returns the votes per option of poll pollID of stream when the
	// poll closes, for its poll_result cue. Nil counts zeros; a short slice
	// is padded with zeros, a long one cut.
	Tally func(stream, pollID string) []int64
	// PollResultMs is how long a poll result is on screen, in ms. It
	// defaults to DefaultPollResultMs (10 s).
	PollResultMs int
	// In a cluster (cluster.go): Owners tells which node owns a stream, and
	// Store is a ClusterStore. Cues posted to a node that does not own their
	// stream are queued in the cluster for the owner to place; a POST waits
	// up to PlaceWait (default DefaultPlaceWait) for that. ClusterObserver,
	// when set, gets the propagation lag. All three default to nil/zero: a
	// single node.
	Owners          Ownership
	PlaceWait       time.Duration
	ClusterObserver ClusterObserver
	cluster         clusterState

	once sync.Once
	now  func() time.Time // tests replace it
	ids  idLocks

	schedMu  sync.Mutex
	schedule []*Cue

	data publisherData

	polls     pollClock
	afterFunc func(time.Duration, func()) func() bool // tests replace it
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
		if s.PollResultMs <= 0 || s.PollResultMs > MaxDurationMs {
			s.PollResultMs = DefaultPollResultMs
		}
		if s.afterFunc == nil {
			s.afterFunc = afterFuncDefault
		}
		if s.PlaceWait <= 0 {
			s.PlaceWait = DefaultPlaceWait
		}
	})
	s.startCluster()
}

// Place reserves c's id in the store, has the packager place it and records
// where it landed: when it returns nil, the cue is in the stream and on
// disk. It returns ErrIDUsed for an id the stream has used for another cue
// (or for this one, if the packager refused it), and packager.ErrNotFound
// for a stream that is not live.
//
// Placing a cue again is idempotent, so that a producer who did not get the
// answer (a timeout, a crash of the server) can retry: a cue the stream
// has placed with the same id and the same content (sameCue) is not placed
// twice, Place returns its record as it is now (scheduled, active, ended or
// cancelled), even while the stream is down; one whose placement a crash
// interrupted is placed now (Store.Reserve takes its reservation over).
func (s *Service) Place(stream string, c *Cue) (Record, error) {
	rec, _, err := s.place(stream, c)
	return rec, err
}

// place is Place, also reporting whether the cue was placed before (a
// replay), for the API's log.
func (s *Service) place(stream string, c *Cue) (Record, bool, error) {
	s.Start()
	if c.ID != "" {
		// A retry that arrives while its first attempt is being placed
		// waits for that attempt's outcome: it would otherwise find the id
		// reserved and answer a conflict for a cue about to appear.
		defer s.ids.lock(stream, c.ID)()

		// Answered from a read where it can be, also while the stream is
		// down: an id refused inside Reserve's write would make the
		// writes sharing its commit run again.
		rec, err := s.Store.Get(stream, c.ID)
		switch {
		case errors.Is(err, ErrCueNotFound):
		case err != nil:
			return Record{}, false, err
		case replay(&rec, c):
			return rec, true, nil
		case rec.State != StatePending || !sameCue(&rec.Cue, c):
			return Record{}, false, ErrIDUsed
		}
	}
	if cs, ok := s.clustered(); ok && !s.placesHere(stream) {
		return s.enqueue(cs, stream, c)
	}
	if !s.Timeline.HasStream(stream) {
		return Record{}, false, packager.ErrNotFound
	}
	rec, err := s.Store.Reserve(stream, c, s.now())
	if errors.Is(err, ErrIDUsed) && replay(&rec, c) {
		return rec, true, nil
	}
	if err != nil {
		return Record{}, false, err
	}
	id := rec.Cue.ID
	ev, err := NewEvent(&rec.Cue, rec.Seq)
	if err != nil {
		return Record{}, false, errors.Join(err, s.Store.Release(stream, id))
	}
	if err := s.endReplaced(stream, &rec.Cue, &ev); err != nil {
		return Record{}, false, errors.Join(err, s.Store.Release(stream, id))
	}
	at, err := s.Timeline.AddEvent(stream, ev)
	if err != nil {
		if errors.Is(err, packager.ErrEventExists) {
			// The packager has the id already, so players may have seen
			// it: it stays used.
			_, ferr := s.Store.Finish(stream, id, StateFailed, packager.EventTime{}, s.now())
			return Record{}, false, errors.Join(ErrIDUsed, ferr)
		}
		return Record{}, false, errors.Join(err, s.Store.Release(stream, id))
	}
	rec, err = s.Store.Place(stream, id, at, s.now())
	if err == nil {
		s.placed(stream, &rec, at.Media+ev.Duration)
	}
	return rec, false, err
}

// replay reports whether rec, the record of c's id, is c placed before: a
// retry of it is answered with rec. A pending record is not (a crash
// leftover is taken over instead), nor a failed one (the packager refused
// it; the id stays used).
func replay(rec *Record, c *Cue) bool {
	switch rec.State {
	case statePlaced, StateEnded, StateCancelled, StateQueued:
		return sameCue(&rec.Cue, c)
	}
	return false
}

// idLocks serialises the placements of one cue id. Entries live only while
// held or awaited.
type idLocks struct {
	mu sync.Mutex
	m  map[string]*idLock
}

type idLock struct {
	mu   sync.Mutex
	refs int // holders and waiters, under idLocks.mu
}

// lock takes the lock of stream's cue id and returns its unlock.
func (l *idLocks) lock(stream, id string) func() {
	key := stream + "\x00" + id
	l.mu.Lock()
	if l.m == nil {
		l.m = map[string]*idLock{}
	}
	e := l.m[key]
	if e == nil {
		e = &idLock{}
		l.m[key] = e
	}
	e.refs++
	l.mu.Unlock()
	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		l.mu.Lock()
		if e.refs--; e.refs == 0 {
			delete(l.m, key)
		}
		l.mu.Unlock()
	}
}

// End ends the cue of rec now if it is active (players get its END event
// and the DATERANGE an END-DATE) or cancels it if it is scheduled, and
// records that. A stream that is gone changes only the store.
func (s *Service) End(stream string, rec *Record) (Record, error) {
	s.Start()
	if cs, ok := s.clustered(); ok && (rec.State == StateQueued || !s.placesHere(stream)) {
		return s.endRemote(cs, stream, rec)
	}
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
	out, err := s.Store.Finish(stream, id, state, end, s.now())
	if err == nil {
		s.ended(stream, &out)
	}
	return out, err
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
	s.syncCluster(stream)
	recs, err := s.Store.OpenCues(stream)
	if err != nil {
		log.Error("cue store failed", "err", err)
	}
	for i := range recs {
		if err := s.restore(stream, &recs[i]); err != nil {
			log.Error("cue not restored", "cue", recs[i].Cue.ID, "err", err)
		}
	}

	s.streamStartedCluster(stream)

	s.schedMu.Lock()
	sched := s.schedule
	s.schedMu.Unlock()
	for _, sc := range sched {
		rec, err := s.Store.Get(stream, sc.ID)
		switch {
		case errors.Is(err, ErrCueNotFound):
		case err == nil && rec.State == StatePending:
			// A crash interrupted its placement at an earlier start: Place
			// takes the reservation over.
		default:
			continue // placed at an earlier start, or the store failed
		}
		c := *sc
		rec, err = s.Place(stream, &c)
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
		// A reservation whose POST has not finished: in flight, or left by
		// a crash between reserving the id and placing the cue. A leftover
		// was never acknowledged, so it is not placed unasked; it stays
		// pending, hidden, for a retry of its POST to place (Place).
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
	restored, err := s.Store.Replace(stream, rec.Cue.ID, at, s.now())
	if err == nil {
		s.placed(stream, &restored, at.Media+ev.Duration)
	}
	return err
}
