package ingest

import (
	"time"

	"github.com/bluenviron/gortmplib"
	"github.com/bluenviron/gortmplib/pkg/message"
)

// rtmpUnwrap sits between gortmplib's connection and everything that reads
// media timestamps from it (the track probe, the Reader, the data tap), and
// turns RTMP's 32-bit millisecond timestamps into a clock that keeps growing.
//
// RTMP specification 5.3.1.3: "Because timestamps are 32 bits long, they
// roll over every 49 days, 17 hours, 2 minutes and 47.296 seconds. [...] an
// RTMP application SHOULD use serial number arithmetic [RFC1982] when
// processing timestamps, and SHOULD be capable of handling wraparound."
// gortmplib gives each message's timestamp as a duration of 0 to 2^32-1 ms
// (it adds chunk deltas modulo 2^32, extended timestamps included), so a
// publisher whose clock starts near 2^32 ms (relays and encoders that start
// at an offset) jumps back 49.7 days at the wrap; the packager then sees
// time go backwards and cuts segments wrong.
//
// Each message's timestamp is taken as the serial number (RFC 1982, 32 bits)
// closest to the previous one: a step of less than 2^31 ms forwards or
// backwards, so audio and video interleaved a little out of order on either
// side of the wrap land on the right side of it.
type rtmpUnwrap struct {
	gortmplib.Conn

	started bool
	last    uint32 // the last media timestamp, as sent
	ext     int64  // the last media timestamp, unwrapped, in ms
}

func (u *rtmpUnwrap) Read() (message.Message, error) {
	msg, err := u.Conn.Read()
	if err == nil {
		u.adjust(msg)
	}
	return msg, err
}

// adjust rewrites the timestamp of a timed media message in place.
func (u *rtmpUnwrap) adjust(msg message.Message) {
	switch m := msg.(type) {
	case *message.VideoExMultitrack:
		u.adjust(m.Wrapped)
	case *message.AudioExMultitrack:
		u.adjust(m.Wrapped)
	case *message.Video:
		// Sequence headers and end-of-sequence markers are often sent at 0
		// by encoders whose frames start at an offset: they do not move
		// the clock.
		m.DTS = u.unwrap(m.DTS, m.Type == message.VideoTypeAU)
	case *message.Audio:
		m.DTS = u.unwrap(m.DTS, m.Codec != message.CodecMPEG4Audio || m.AACType == message.AudioAACTypeAU)
	case *message.VideoExCodedFrames:
		m.DTS = u.unwrap(m.DTS, true)
	case *message.VideoExFramesX:
		m.DTS = u.unwrap(m.DTS, true)
	case *message.VideoExMetadata:
		m.DTS = u.unwrap(m.DTS, false)
	case *message.AudioExCodedFrames:
		m.DTS = u.unwrap(m.DTS, true)
	}
}

// unwrap returns the unwrapped time of a timestamp; media timestamps move the
// clock, others are placed on it.
func (u *rtmpUnwrap) unwrap(d time.Duration, media bool) time.Duration {
	ts := uint32(d / time.Millisecond)
	if !u.started {
		if !media {
			return d
		}
		u.started, u.last, u.ext = true, ts, int64(ts)
		return d
	}
	// The int32 conversion is RFC 1982 serial number arithmetic: the
	// difference modulo 2^32, taken as the step of less than 2^31.
	ext := u.ext + int64(int32(ts-u.last))
	if ext < 0 {
		// A non-media message from before the first frame's epoch.
		ext = int64(ts)
	}
	if media {
		u.last, u.ext = ts, ext
	}
	return time.Duration(ext)*time.Millisecond + d%time.Millisecond
}
