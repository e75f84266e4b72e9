package cues

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/abema/go-mp4"
)

// SchemeID3 is the emsg scheme_id_uri of ID3 timed metadata in CMAF (AOM
// "Carriage of ID3 Timed Metadata in CMAF", section 3): hls.js, Safari,
// Media3 and Shaka read it.
const SchemeID3 = "https://aomedia.org/emsg/ID3"

// DurationUnknown is the emsg event_duration of an open-ended event
// (ISO/IEC 23009-1 5.10.3.3.4: 0xFFFF_FFFF is an unknown duration).
const DurationUnknown = math.MaxUint32

// ErrDurationRange is a cue duration that does not fit the 32-bit
// event_duration at the track's timescale.
var ErrDurationRange = errors.New("cue duration does not fit emsg event_duration")

// EmsgIDs are the emsg ids of a cue: Start for its start (and every re-send
// of it), End for its END event. They derive from the store's per-stream
// sequence number of the cue, so they are stable across restarts and
// distinct for every cue of a stream.
func EmsgIDs(seq uint32) (start, end uint32) {
	return seq << 1, seq<<1 | 1
}

// Emsg returns an emsg box, version 1 (ISO/IEC 23009-1 5.10.3.3):
//
//	size type "emsg" | version 01 | flags 000000
//	timescale (32) | presentation_time (64) | event_duration (32) | id (32)
//	scheme_id_uri "https://aomedia.org/emsg/ID3" 00 | value "" 00
//	message_data (the ID3 tag)
func Emsg(timescale uint32, presentationTime uint64, duration uint32, id uint32, message []byte) ([]byte, error) {
	e := &mp4.Emsg{
		SchemeIdUri:      SchemeID3,
		Value:            "",
		Timescale:        timescale,
		PresentationTime: presentationTime,
		EventDuration:    duration,
		Id:               id,
		MessageData:      message,
	}
	e.SetVersion(1)
	var body bytes.Buffer
	body.Grow(4 + 20 + len(SchemeID3) + 2 + len(message))
	if _, err := mp4.Marshal(&body, e, mp4.Context{}); err != nil {
		return nil, fmt.Errorf("emsg: %w", err)
	}
	hdr := mp4.EncodeBoxInfo(&mp4.BoxInfo{
		Type:       mp4.BoxTypeEmsg(),
		Size:       uint64(mp4.SmallHeaderSize + body.Len()),
		HeaderSize: mp4.SmallHeaderSize,
	})
	return append(hdr, body.Bytes()...), nil
}

// eventDuration converts ms to timescale units for event_duration: the
// unknown duration for 0, ErrDurationRange if it does not fit.
func eventDuration(ms int64, timescale uint32) (uint32, error) {
	if ms <= 0 {
		return DurationUnknown, nil
	}
	// Round to the nearest unit; ms * timescale fits in 64 bits for every
	// valid cue (12 h * 2^32).
	d := (uint64(ms)*uint64(timescale) + 500) / 1000
	if d >= DurationUnknown {
		return 0, fmt.Errorf("%w: %d ms at timescale %d", ErrDurationRange, ms, timescale)
	}
	return uint32(d), nil
}

// StartBox returns the function the packager calls for the emsg box of a
// cue's start (packager.Event.Box): the ID3 tag of the cue's Wire JSON,
// event_duration from duration_ms, id from EmsgIDs. The packager calls it
// again, with the same presentation time, for each re-send of an active cue
// at a segment start, and the box has the same id each time.
func StartBox(c *Cue, seq uint32) (func(timescale uint32, presentationTime uint64) ([]byte, error), error) {
	wire, err := c.Wire()
	if err != nil {
		return nil, err
	}
	id, _ := EmsgIDs(seq)
	tmpl, err := emsgTemplate(id, wire)
	if err != nil {
		return nil, err
	}
	ms := c.DurationMs
	return func(timescale uint32, pt uint64) ([]byte, error) {
		if timescale == 0 {
			return nil, errors.New("emsg: timescale 0")
		}
		d, err := eventDuration(ms, timescale)
		if err != nil {
			return nil, err
		}
		return tmpl.box(timescale, pt, d), nil
	}, nil
}

// EndBox returns the function for the emsg box of cue id's END event: the
// ID3 tag of EndWire, event_duration 0, id the cue's end id from EmsgIDs.
func EndBox(id string, seq uint32) (func(timescale uint32, presentationTime uint64) ([]byte, error), error) {
	wire, err := EndWire(id)
	if err != nil {
		return nil, err
	}
	_, eid := EmsgIDs(seq)
	tmpl, err := emsgTemplate(eid, wire)
	if err != nil {
		return nil, err
	}
	return func(timescale uint32, pt uint64) ([]byte, error) {
		if timescale == 0 {
			return nil, errors.New("emsg: timescale 0")
		}
		return tmpl.box(timescale, pt, 0), nil
	}, nil
}

// emsgTmpl is a cue's emsg box, marshalled once. The packager asks for it
// under the stream's lock, in the part that closes on the frame a viewer is
// waiting for, and again at every segment start while the cue is active:
// a copy with the three time fields set costs a fraction of a marshal.
type emsgTmpl []byte

// emsgTemplate marshals the box of id carrying the ID3 tag of wire, with
// the time fields zero.
func emsgTemplate(id uint32, wire []byte) (emsgTmpl, error) {
	tag, err := EncodeID3(ID3Description, wire)
	if err != nil {
		return nil, err
	}
	b, err := Emsg(0, 0, 0, id, tag)
	return emsgTmpl(b), err
}

// box returns a copy of the template with timescale, presentation_time and
// event_duration set, at their offsets in version 1 (see Emsg): after the
// 8-byte box header and the 4 bytes of version and flags.
func (t emsgTmpl) box(timescale uint32, pt uint64, duration uint32) []byte {
	b := slices.Clone(t)
	binary.BigEndian.PutUint32(b[12:], timescale)
	binary.BigEndian.PutUint64(b[16:], pt)
	binary.BigEndian.PutUint32(b[24:], duration)
	return b
}
