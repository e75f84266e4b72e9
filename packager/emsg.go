package packager

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
)

// schemeID3 is the emsg scheme_id_uri of ID3 timed metadata in CMAF (AOM,
// "Carriage of ID3 Timed Metadata in CMAF", section 3): hls.js, Safari,
// Media3 and Shaka read it.
const schemeID3 = "https://aomedia.org/emsg/ID3"

// durationUnknown is the emsg event_duration of an open-ended event
// (ISO/IEC 23009-1 5.10.3.3.4: 0xFFFF_FFFF is an unknown duration).
const durationUnknown = math.MaxUint32

// ErrDurationRange is an event duration that does not fit the 32-bit
// emsg event_duration at the track's timescale.
var ErrDurationRange = errors.New("event duration does not fit emsg event_duration")

// errTimescale is a box asked for at timescale 0.
var errTimescale = errors.New("emsg: timescale 0")

// emsgHeadSize is the bytes of a version 1 box before scheme_id_uri: box
// header (8), version and flags (4), timescale (4), presentation_time (8),
// event_duration (4), id (4).
const emsgHeadSize = 32

// emsgTmpl is an event's emsg box with its time fields zero, framed once.
// The packager asks for the box under the stream's lock, in the part that
// closes on the frame a viewer is waiting for, and again at every segment
// start while the event is active: a copy with the three time fields set
// costs a fraction of framing it.
type emsgTmpl []byte

// newEmsgTemplate frames an emsg box, version 1 (ISO/IEC 23009-1
// 5.10.3.3), of emsg id carrying message (an ID3 tag):
//
//	size type "emsg" | version 01 | flags 000000
//	timescale (32) | presentation_time (64) | event_duration (32) | id (32)
//	scheme_id_uri "https://aomedia.org/emsg/ID3" 00 | value "" 00
//	message_data (the ID3 tag)
func newEmsgTemplate(id uint32, message []byte) (emsgTmpl, error) {
	size := emsgHeadSize + len(schemeID3) + 2 + len(message)
	if uint64(size) > math.MaxUint32 {
		return nil, fmt.Errorf("emsg: message of %d bytes", len(message))
	}
	b := make([]byte, emsgHeadSize, size)
	binary.BigEndian.PutUint32(b, uint32(size))
	copy(b[4:], "emsg")
	b[8] = 1 // version; flags stay 0
	binary.BigEndian.PutUint32(b[28:], id)
	b = append(b, schemeID3...)
	b = append(b, 0, 0) // scheme's NUL, then the empty value's
	return append(b, message...), nil
}

// box returns a copy of the template with timescale, presentation_time and
// event_duration set, at their offsets in version 1: after the 8-byte box
// header and the 4 bytes of version and flags.
func (t emsgTmpl) box(timescale uint32, pt uint64, duration uint32) []byte {
	b := slices.Clone(t)
	binary.BigEndian.PutUint32(b[12:], timescale)
	binary.BigEndian.PutUint64(b[16:], pt)
	binary.BigEndian.PutUint32(b[24:], duration)
	return b
}

// emsgDuration converts d to timescale units for event_duration, rounded
// to the nearest unit: the unknown duration for 0, ErrDurationRange if it
// does not fit.
func emsgDuration(d time.Duration, timescale uint32) (uint32, error) {
	if d <= 0 {
		return durationUnknown, nil
	}
	// Whole seconds and the rest apart, so that d * timescale cannot
	// overflow 64 bits (12 h * 2^32 would).
	secs, rest := uint64(d/time.Second), uint64(d%time.Second)
	ticks := secs*uint64(timescale) + (rest*uint64(timescale)+uint64(time.Second/2))/uint64(time.Second)
	if secs > math.MaxUint32 || ticks >= durationUnknown {
		return 0, fmt.Errorf("%w: %v at timescale %d", ErrDurationRange, d, timescale)
	}
	return uint32(ticks), nil
}

// startBox returns the emsg of the event's start at presentation time pt:
// event_duration from its Duration.
func (f *eventFrames) startBox(d time.Duration, timescale uint32, pt uint64) ([]byte, error) {
	if f.start == nil {
		return nil, nil
	}
	if timescale == 0 {
		return nil, errTimescale
	}
	dur, err := emsgDuration(d, timescale)
	if err != nil {
		return nil, err
	}
	return f.start.box(timescale, pt, dur), nil
}

// endBox returns the emsg of the event's explicit end at presentation time
// pt: event_duration 0.
func (f *eventFrames) endBox(timescale uint32, pt uint64) ([]byte, error) {
	if f.end == nil {
		return nil, nil
	}
	if timescale == 0 {
		return nil, errTimescale
	}
	return f.end.box(timescale, pt, 0), nil
}

// StartBox returns the emsg box that carries the event's start (its ID3 in
// message_data, id EmsgID, event_duration from Duration) at presentation
// time pt of timescale: the bytes the packager puts in the parts. Nil if
// the event has no ID3.
func (ev *Event) StartBox(timescale uint32, pt uint64) ([]byte, error) {
	f, err := newEventFrames(ev)
	if err != nil {
		return nil, err
	}
	return f.startBox(ev.Duration, timescale, pt)
}

// EndBox returns the emsg box of the event's explicit end (End.ID3, id
// End.EmsgID) at presentation time pt of timescale. Nil if End has no ID3.
func (ev *Event) EndBox(timescale uint32, pt uint64) ([]byte, error) {
	f, err := newEventFrames(ev)
	if err != nil {
		return nil, err
	}
	return f.endBox(timescale, pt)
}
