package cues

import (
	"time"

	"github.com/shopcast/shopcast/packager"
)

// NewEvent builds the packager event of a validated cue whose store
// sequence number is seq: placement from `at`, duration from duration_ms,
// and the emsg and DATERANGE builders. The cue must have its ID.
func NewEvent(c *Cue, seq uint32) (packager.Event, error) {
	box, err := StartBox(c, seq)
	if err != nil {
		return packager.Event{}, err
	}
	dr, err := DateRangeFunc(c)
	if err != nil {
		return packager.Event{}, err
	}
	ev := packager.Event{
		ID:        c.ID,
		Duration:  time.Duration(c.DurationMs) * time.Millisecond,
		Box:       box,
		DateRange: dr,
	}
	switch c.At.Kind {
	case AtNow:
		ev.Now = true
	case AtWall:
		ev.Time = -1 // packager.Event: "when Time is negative, Wall"
		ev.Wall = c.At.Wall
	case AtMedia:
		ev.Time = c.At.Media
	}
	return ev, nil
}
