package cues

import (
	"time"

	"github.com/shopcast/shopcast/packager"
)

// EmsgIDs are the emsg ids of a cue: Start for its start (and every re-send
// of it), End for its END event. They derive from the store's per-stream
// sequence number of the cue, so they are stable across restarts and
// distinct for every cue of a stream.
func EmsgIDs(seq uint32) (start, end uint32) {
	return seq << 1, seq<<1 | 1
}

// NewEvent returns the packager event of a validated cue whose store
// sequence number is seq: placement from `at`, duration from duration_ms,
// the ID3 tags of its start (the Wire JSON) and of its END event
// (EndWire), their emsg ids from EmsgIDs, and its DATERANGE attributes.
// The packager frames the emsg boxes, the TS ID3 PES and the DATERANGE
// line from these. The cue must have its ID.
func NewEvent(c *Cue, seq uint32) (packager.Event, error) {
	wire, err := c.Wire()
	if err != nil {
		return packager.Event{}, err
	}
	tag, err := EncodeID3(ID3Description, wire)
	if err != nil {
		return packager.Event{}, err
	}
	endWire, err := EndWire(c.ID)
	if err != nil {
		return packager.Event{}, err
	}
	endTag, err := EncodeID3(ID3Description, endWire)
	if err != nil {
		return packager.Event{}, err
	}
	start, end := EmsgIDs(seq)
	ev := packager.Event{
		ID:        c.ID,
		Duration:  time.Duration(c.DurationMs) * time.Millisecond,
		ID3:       tag,
		EmsgID:    start,
		End:       packager.EventEnd{ID3: endTag, EmsgID: end},
		DateRange: dateRange(c, wire),
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
