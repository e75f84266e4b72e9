package cues

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"sync"
	"time"
)

// DefaultPollResultMs is how long a poll result stays on screen unless
// Service.PollResultMs says otherwise: 10 s.
const DefaultPollResultMs = 10000

// pollClock keeps the polls of every stream that are placed and not yet
// closed, each with the timer that closes it at its end.
type pollClock struct {
	mu     sync.Mutex
	open   map[pollKey]*openPoll
	closed bool
	wg     sync.WaitGroup // closes running
}

type pollKey struct{ stream, id string }

type openPoll struct {
	options    int
	start, end time.Time     // program date-times
	endMedia   time.Duration // where the result goes
	stop       func() bool
}

// OpenPoll reports whether poll id of stream is open now (it has started
// and not ended) and how many options it has: votes are taken only then.
func (s *Service) OpenPoll(stream, id string) (options int, ok bool) {
	s.Start()
	p := &s.polls
	p.mu.Lock()
	op := p.open[pollKey{stream, id}]
	p.mu.Unlock()
	if op == nil {
		return 0, false
	}
	now := s.now()
	if now.Before(op.start) || !now.Before(op.end) {
		return 0, false
	}
	return op.options, true
}

// placed is told of every cue the Service has put on the Timeline, at
// placement and at restore, with the media time of its end: a poll gets
// the timer that closes it there.
func (s *Service) placed(stream string, rec *Record, endMedia time.Duration) {
	if rec.Cue.Type != TypePoll || rec.Cue.Poll == nil || rec.End.IsZero() {
		return
	}
	p := &s.polls
	key := pollKey{stream, rec.Cue.ID}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	if p.open == nil {
		p.open = map[pollKey]*openPoll{}
	}
	if old := p.open[key]; old != nil {
		old.stop()
	}
	op := &openPoll{options: len(rec.Cue.Poll.Options), start: rec.Start, end: rec.End, endMedia: endMedia}
	// The poll closes when its end reaches the packager: the program
	// date-time of a frame is the wall clock when the packager got it.
	op.stop = s.afterFunc(rec.End.Sub(s.now()), func() { s.closePoll(stream, rec.Cue.ID, op, 0) })
	p.open[key] = op
}

// ended is told of a cue ended or cancelled early (End). A poll deleted
// while open closes where its END event landed; a cancelled one closes
// without a result.
func (s *Service) ended(stream string, rec *Record) {
	if rec.Cue.Type != TypePoll {
		return
	}
	p := &s.polls
	key := pollKey{stream, rec.Cue.ID}
	p.mu.Lock()
	op := p.open[key]
	p.mu.Unlock()
	if op == nil || !op.stop() {
		return // closing already, or not ours
	}
	if rec.State != StateEnded || rec.EndMedia <= 0 {
		p.mu.Lock()
		if p.open[key] == op {
			delete(p.open, key)
		}
		p.mu.Unlock()
		return
	}
	s.closePoll(stream, rec.Cue.ID, op, rec.EndMedia)
}

// closePoll takes the tally of a poll and places its result at the poll's
// end media time (endMedia, or the end it was placed with when zero), so
// that every player shows it on the same frame.
func (s *Service) closePoll(stream, id string, op *openPoll, endMedia time.Duration) {
	p := &s.polls
	key := pollKey{stream, id}
	p.mu.Lock()
	if p.open[key] != op || p.closed {
		p.mu.Unlock()
		return
	}
	delete(p.open, key) // no vote counts from here on
	p.wg.Add(1)
	p.mu.Unlock()
	defer p.wg.Done()

	log := s.Logger.With("stream", stream, "poll", id)
	rec, err := s.Store.Get(stream, id)
	if err != nil {
		log.Error("poll not closed: cue store failed", "err", err)
		return
	}
	if endMedia <= 0 {
		endMedia = op.endMedia
	}
	poll := rec.Cue.Poll
	counts := make([]int64, len(poll.Options))
	if s.Tally != nil {
		copy(counts, s.Tally(stream, id))
	}
	for i, n := range counts {
		counts[i] = max(n, 0)
	}
	res := &Cue{
		V:    Version,
		ID:   pollResultID(id),
		Type: TypePollResult,
		PollResult: &PollResult{
			Poll:     id,
			Question: poll.Question,
			Options:  poll.Options,
			Counts:   counts,
		},
		At:         At{Kind: AtMedia, Media: endMedia},
		DurationMs: int64(s.PollResultMs),
	}
	if err := res.Validate(); err != nil {
		log.Error("poll result invalid", "err", err)
		return
	}
	placed, err := s.Place(stream, res)
	switch {
	case errors.Is(err, ErrIDUsed):
		// Placed before, by a restart or another node closing the same
		// poll: one result per poll.
		log.Info("poll result placed before", "cue", res.ID)
	case err != nil:
		log.Error("poll result not placed", "cue", res.ID, "err", err)
	default:
		log.Info("poll closed", "cue", res.ID, "media_ms", placed.Media.Milliseconds(), "counts", counts)
	}
}

// pollResultID is the id of poll id's result: derived, so that closing a
// poll twice (a retry, a restart) places one result. An id too long for
// the suffix is shortened with a hash of it, which keeps it unique.
func pollResultID(id string) string {
	const suffix = "-result"
	if len(id)+len(suffix) <= 64 {
		return id + suffix
	}
	sum := sha256.Sum256([]byte(id))
	return id[:40] + "-" + hex.EncodeToString(sum[:8]) + suffix
}

// closePolls stops the poll timers and waits for the closes running.
func (s *Service) closePolls() {
	p := &s.polls
	p.mu.Lock()
	p.closed = true
	for k, op := range p.open {
		op.stop()
		delete(p.open, k)
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// afterFuncDefault is time.AfterFunc, returning its Stop.
func afterFuncDefault(d time.Duration, f func()) func() bool {
	return time.AfterFunc(d, f).Stop
}
