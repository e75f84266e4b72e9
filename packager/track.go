package packager

import (
	"fmt"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/av1"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/opus"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/vp9"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"

	"github.com/shopcast/shopcast/ingest"
)

// jumpThreshold is how far a publisher's timestamp may stray from where the
// track's timeline expects it before the packager treats it as a jump (an
// encoder restart, a clock reset) and rebases the track instead of writing a
// gap or an overlap into the fMP4 timeline.
const jumpThreshold = time.Second

// sample is one access unit placed on the stream's media timeline.
type sample struct {
	*fmp4.Sample
	dts    uint64 // decode time in track timescale
	key    bool
	wall   time.Time // the ingest's dating of its PTS (Unit.Wall); zero if none
	sealed bool
}

// track turns one ingest track's units into fMP4 samples on a continuous
// timeline. Durations are known when a sample is written: estimated from the
// previous frame interval for video (so a part can close on its last frame
// instead of waiting for the next one), exact from the frame size for audio.
// When the estimate was wrong the next sample's decode time absorbs the
// difference (its PTS stays exact, through the composition offset).
type track struct {
	in        *ingest.Track
	id        int
	timescale uint32
	video     bool
	// aligned keeps the publisher's timestamps on the aligned timeline
	// (aligned.go): a forward jump is a gap of the timeline, not rebased,
	// and a video frame after a hole starts at its own time.
	aligned bool

	shift time.Duration // accumulated rebasing after timestamp jumps

	started bool
	next    uint64 // decode time the next sample is expected at
	last    *sample
	estDur  uint32    // estimated duration of the next video frame
	recent  [4]uint32 // the last frame intervals, newest at recent[frames%4]
	frames  int64
}

func newTrack(in *ingest.Track, id int) (*track, error) {
	if in == nil || in.Codec == nil {
		return nil, fmt.Errorf("%w: track without codec", ErrUnsupportedCodec)
	}
	t := &track{in: in, id: id, video: in.Codec.IsVideo()}
	switch c := in.Codec.(type) {
	case *codecs.H264, *codecs.H265, *codecs.AV1, *codecs.VP9:
		t.timescale = 90000
	case *codecs.MPEG4Audio:
		t.timescale = uint32(c.Config.SampleRate)
	case *codecs.Opus:
		t.timescale = 48000
	default:
		return nil, fmt.Errorf("%w: %T", ErrUnsupportedCodec, in.Codec)
	}
	if t.timescale == 0 {
		return nil, fmt.Errorf("%w: zero sample rate", ErrUnsupportedCodec)
	}
	return t, nil
}

// ticks converts a duration to the track timescale, rounding to the nearest
// tick: a timestamp that came from the same clock (RTSP's 90 kHz) converts
// back exactly, where truncating would put most frames one tick early.
func (t *track) ticks(d time.Duration) int64 {
	sec, ns := int64(d/time.Second), int64(d%time.Second)
	ts := int64(t.timescale)
	return sec*ts + (ns*ts+sign(ns)*int64(time.Second)/2)/int64(time.Second)
}

// duration converts ticks to a duration, whole seconds and the rest apart:
// ticks * 1e9 would overflow past 28 hours at 90 kHz, and the aligned
// timeline's media times count from 2026.
func (t *track) duration(ticks uint64) time.Duration {
	ts := uint64(t.timescale)
	return time.Duration(ticks/ts)*time.Second + time.Duration(ticks%ts)*time.Second/time.Duration(ts)
}

// isKey reports whether a unit is a random access point.
func (t *track) isKey(u *ingest.Unit) bool {
	switch t.in.Codec.(type) {
	case *codecs.H264:
		return h264.IsRandomAccess(u.AU)
	case *codecs.H265:
		return h265.IsRandomAccess(u.AU)
	case *codecs.AV1:
		return av1.IsRandomAccess2(u.AU)
	case *codecs.VP9:
		return len(u.AU) > 0 && vp9.IsRandomAccess(u.AU[0])
	default:
		return true
	}
}

// audioDuration returns the duration of an audio frame in ticks.
func (t *track) audioDuration(u *ingest.Unit) uint32 {
	switch t.in.Codec.(type) {
	case *codecs.Opus:
		return uint32(opus.PacketDuration2(u.Frame) * int64(t.timescale) / 48000)
	default:
		return 1024 // AAC-LC frames carry 1024 samples
	}
}

// build turns a unit into a sample. origin is the publication clock value
// that maps to media time mediaBase. It returns nil for units that fall
// before the start of the publication.
func (t *track) build(u *ingest.Unit, origin, mediaBase time.Duration) (*sample, error) {
	actual := t.ticks(u.DTS - t.shift - origin + mediaBase)
	if !t.started && actual < t.ticks(mediaBase) {
		return nil, nil
	}
	if t.started {
		// A jump forward or backward (encoder restart, clock reset) is
		// rebased, not written into the timeline as a gap or an overlap.
		if d := actual - int64(t.next); d > t.ticks(jumpThreshold) && !t.aligned || d < -t.ticks(jumpThreshold) {
			t.shift += t.duration(uint64(max(d, -d))) * time.Duration(sign(d))
			actual = int64(t.next)
		}
	}

	s := &sample{Sample: &fmp4.Sample{}, wall: u.Wall}
	if t.video {
		s.key = t.isKey(u)
		var err error
		// The payload as fmp4.Sample's deprecated Fill* methods made it:
		// length-prefixed NAL units (H.264 and H.265 alike), AV1's
		// low-overhead bitstream.
		switch t.in.Codec.(type) {
		case *codecs.H264, *codecs.H265:
			s.Payload, err = h264.AVCC(u.AU).Marshal()
		case *codecs.AV1:
			s.Payload, err = av1.Bitstream(u.AU).Marshal()
		case *codecs.VP9:
			if len(u.AU) > 0 {
				s.Payload = u.AU[0]
			}
		}
		if err != nil {
			return nil, fmt.Errorf("track %d: %w", t.in.ID, err)
		}
		s.IsNonSyncSample = !s.key
	} else {
		s.Payload = u.Frame
		s.key = true
	}

	if !t.started {
		t.started = true
		t.next = uint64(actual)
	}
	dts := t.next
	if t.video {
		if t.last != nil && !t.last.sealed {
			// The previous frame is still in the open part: its estimated
			// duration becomes exact now that its successor's time is known.
			// On the aligned timeline a hole (frames lost on the way) is
			// left a hole: stretched over it, this frame would cover the
			// grid slots listed as gaps.
			if d := actual - int64(t.last.dts); d > 0 && !(t.aligned && d > 2*int64(t.estDur)) {
				t.last.Duration = uint32(d)
				dts = uint64(actual)
			}
		}
		if t.aligned && actual > int64(dts) {
			dts = uint64(actual)
		}
		if t.last != nil && actual > int64(t.last.dts) {
			// The estimate is the shortest recent interval: an estimate
			// longer than the real interval would put the next frame's
			// decode time after its PTS when this frame ends a part
			// (millisecond timestamps alternate 33, 33, 34 ms at 30 fps).
			t.recent[t.frames%int64(len(t.recent))] = uint32(actual - int64(t.last.dts))
			t.estDur = 0
			for _, d := range t.recent {
				if d > 0 && (t.estDur == 0 || d < t.estDur) {
					t.estDur = d
				}
			}
		}
		if t.estDur == 0 {
			t.estDur = t.timescale / 30
		}
		s.Duration = t.estDur
		pts := t.ticks(u.PTS - t.shift - origin + mediaBase)
		// A composition offset is never negative (PTS >= DTS): should an
		// irregular frame rate still defeat the estimate, this frame is
		// shown at its decode time, late by the estimate's error.
		s.PTSOffset = int32(max(pts-int64(dts), 0))
	} else {
		// Audio timestamps from RTMP are rounded to the millisecond: keep the
		// exact sample-count timeline, unless the publisher left a gap of
		// more than half a frame.
		s.Duration = t.audioDuration(u)
		if d := actual - int64(dts); d > int64(s.Duration)/2 {
			// A trun has no per-sample decode times: while the previous
			// frame's part is open, it lasts until this frame, or the gap
			// would vanish and this frame would play early.
			if t.last != nil && !t.last.sealed {
				t.last.Duration += uint32(d)
			}
			dts = uint64(actual)
		}
		if s.Duration == 0 {
			s.Duration = 1
		}
	}
	s.dts = dts
	t.next = dts + uint64(s.Duration)
	t.last = s
	t.frames++
	return s, nil
}

func sign(v int64) int64 {
	if v < 0 {
		return -1
	}
	return 1
}

// seal marks the last sample as written into a closed part: its duration can
// no longer change.
func (t *track) seal() {
	if t.last != nil {
		t.last.sealed = true
	}
}

// end is the media time just after the last sample.
func (t *track) end() time.Duration { return t.duration(t.next) }
