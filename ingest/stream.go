// Package ingest receives publishers (RTMP, RTSP) and turns each into one
// stream model: a set of tracks and a sequence of access units with PTS/DTS,
// handed to a Sink (the packager).
package ingest

import (
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"
)

// Track is one elementary stream of a publication.
type Track struct {
	// ID is 1-based and stable for the life of a publication.
	ID int

	// Codec and its parameters (SPS/PPS, AudioSpecificConfig, ...), in the
	// form the fMP4 packager writes into the init segment.
	Codec codecs.Codec

	// ClockRate is the rate of the publisher's clock for this track, in Hz,
	// when it is meaningful (90000 for RTP video, the sample rate for audio).
	// Zero when the publisher carries plain durations (RTMP).
	ClockRate int
}

// Unit is one access unit of one track.
type Unit struct {
	Track *Track

	// PTS and DTS on the publication's clock, which starts near zero.
	// DTS <= PTS; they differ when the video has B-frames.
	PTS time.Duration
	DTS time.Duration

	// AU is the access unit of a video track: NAL units without start codes
	// (H.264, H.265), OBUs of a temporal unit (AV1) or one frame (VP9).
	AU [][]byte

	// Frame is one frame of an audio track (an AAC access unit without ADTS,
	// an Opus packet).
	Frame []byte

	// NTP is the wall-clock time of PTS when the publisher told it (RTCP
	// sender reports); zero otherwise.
	NTP time.Time

	// Wall is the wall-clock time of PTS as the ingest measured it from the
	// arrival of the publisher's data: the whole unit had arrived by Wall
	// plus its duration. Zero when the ingest leaves the dating to the Sink.
	// Unlike NTP it takes no publisher's word for the time: encoders'
	// sender reports were seen seconds ahead of the wall clock.
	Wall time.Time
}

// Data is a timed data message from the publisher, such as an AMF
// onCuePoint or onTextData sent by an OBS plugin.
type Data struct {
	// Name is the message name (onCuePoint, onTextData, ...).
	Name string
	// Time is the message timestamp on the publication's clock.
	Time time.Duration
	// Values are the decoded AMF0 arguments that followed the name.
	Values []any
}

// PublishInfo describes a publisher at the moment it starts.
type PublishInfo struct {
	// Name is the public stream name (never the secret stream key).
	Name string
	// Proto is "rtmp", "rtsp" or "rtsp-pull".
	Proto string
	// Remote is the publisher's address.
	Remote string
	// Tracks are the publication's tracks, with their codecs.
	Tracks []*Track
	// Variant is "" for the source publication of stream Name: the
	// publisher's own picture and sound. Otherwise it names one more
	// rendition of Name's picture for an adaptive bitrate ladder (such as
	// "480p", ^[a-z0-9][a-z0-9_-]{0,15}$): its Tracks are one video track,
	// the sound staying the source's, and its units' PTS and DTS are on the
	// source publication's clock (those of the source frames they were made
	// from, within a frame), with keyframes on the source's keyframes.
	// Publishing a variant of a name without a live source publication is
	// refused (packager.ErrNoSource); once the source publication closes or
	// is superseded, WriteUnit returns an error wrapping
	// packager.ErrSourceGone, and the variant's publisher closes and waits
	// for a new source. Closing a variant never ends the stream.
	Variant string
}

// Sink receives publications. The packager implements it.
type Sink interface {
	// Publish starts a publication. If the stream name is already publishing
	// or in its reconnect grace period, the new publication replaces the old
	// one and continues the same stream.
	Publish(info PublishInfo) (Publication, error)
}

// Publication is one publisher's session with a Sink.
type Publication interface {
	// WriteUnit hands over one access unit. The Sink takes ownership of the
	// byte slices.
	WriteUnit(u *Unit) error
	// WriteData hands over one data message.
	WriteData(d *Data)
	// Close ends the publication: the publisher is gone.
	Close()
}
