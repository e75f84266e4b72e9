package cues

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/shopcast/shopcast/packager"
)

// LoadSchedule reads a cue schedule: a JSON array of cues, each with an id
// and `at` as a media time in ms from the stream's start. StreamStarted
// places it in every stream that starts, once per stream (the ids are then
// used in that stream). It replaces a schedule loaded before.
func (a *API) LoadSchedule(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("cue schedule: %w", err)
	}
	cues, err := DecodeSchedule(data)
	if err != nil {
		return fmt.Errorf("cue schedule %s: %w", path, err)
	}
	a.schedMu.Lock()
	a.schedule = cues
	a.schedMu.Unlock()
	return nil
}

// DecodeSchedule decodes and validates a schedule. Field errors name the
// entry: "[2].product.price.amount".
func DecodeSchedule(data []byte) ([]*Cue, error) {
	raw, err := oneValue(data)
	if err != nil {
		return nil, err
	}
	var items []json.RawMessage
	if len(raw) == 0 || raw[0] != '[' || json.Unmarshal(raw, &items) != nil {
		return nil, fieldErr("", "must be a JSON array of cues")
	}
	seen := map[string]bool{}
	out := make([]*Cue, 0, len(items))
	for i, item := range items {
		prefix := fmt.Sprintf("[%d]", i)
		c, err := decodeCueValue(item, prefix)
		if err != nil {
			return nil, err
		}
		if err := c.Validate(); err != nil {
			var fe *FieldError
			if errors.As(err, &fe) {
				return nil, fieldErr(prefix+"."+fe.Field, "%s", fe.Message)
			}
			return nil, err
		}
		switch {
		case c.ID == "":
			return nil, fieldErr(prefix+".id", "required in a schedule, so that a restart does not place the cue twice")
		case seen[c.ID]:
			return nil, fieldErr(prefix+".id", "repeated in the schedule")
		case c.At.Kind != AtMedia:
			return nil, fieldErr(prefix+".at", "must be a media time in ms from the stream's start")
		}
		seen[c.ID] = true
		out = append(out, c)
	}
	return out, nil
}

// StreamStarted is called by the wiring when a stream starts or restarts.
// It puts the stream's stored scheduled and active cues back on the
// Timeline (after a restart of the server or of the stream; cues the
// packager still has are left alone), then places the schedule's cues the
// stream has not had yet. It blocks while it writes to the store.
func (a *API) StreamStarted(stream string) {
	a.Start()
	log := a.Logger.With("stream", stream)
	recs, err := a.Store.OpenCues(stream)
	if err != nil {
		log.Error("cue store failed", "err", err)
	}
	for i := range recs {
		if err := a.restore(stream, &recs[i]); err != nil {
			log.Error("cue not restored", "cue", recs[i].Cue.ID, "err", err)
		}
	}

	a.schedMu.Lock()
	sched := a.schedule
	a.schedMu.Unlock()
	for _, sc := range sched {
		if _, err := a.Store.Get(stream, sc.ID); !errors.Is(err, ErrCueNotFound) {
			continue // placed at an earlier start, or the store failed
		}
		c := *sc
		rec, err := a.place(stream, &c)
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
func (a *API) restore(stream string, rec *Record) error {
	now := a.now()
	if rec.State == StatePending {
		// A reservation whose POST never finished: the server stopped
		// between reserving the id and placing the cue. It was never
		// acknowledged; the id stays used.
		if rec.Created.Before(a.startedAt()) {
			_, err := a.Store.Finish(stream, rec.Cue.ID, StateFailed, packager.EventTime{}, now)
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
	at, err := a.Timeline.AddEvent(stream, ev)
	if errors.Is(err, packager.ErrEventExists) {
		return nil // the packager kept it across the stream's restart
	}
	if err != nil {
		return err
	}
	_, err = a.Store.Replace(stream, rec.Cue.ID, at, a.now())
	return err
}
