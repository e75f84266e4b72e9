package ingest

import (
	"testing"
	"time"

	"github.com/bluenviron/gortmplib/pkg/message"
)

// TestRTMPUnwrap: RTMP timestamps, 32-bit ms, go on growing across the wrap
// (RTMP specification 5.3.1.3, RFC 1982 serial arithmetic).
func TestRTMPUnwrap(t *testing.T) {
	const ms = time.Millisecond
	const wrap = 1 << 32
	type in struct {
		msg  message.Message
		want time.Duration
	}
	video := func(ts uint32) *message.Video {
		return &message.Video{Type: message.VideoTypeAU, DTS: time.Duration(ts) * ms}
	}
	audio := func(ts uint32) *message.Audio {
		return &message.Audio{Codec: message.CodecMPEG4Audio, AACType: message.AudioAACTypeAU, DTS: time.Duration(ts) * ms}
	}
	for _, tc := range []struct {
		name string
		msgs []in
	}{
		{"no wrap", []in{{video(0), 0}, {audio(21), 21 * ms}, {video(33), 33 * ms}}},
		{"wrap", []in{
			{video(wrap - 66), (wrap - 66) * ms},
			{video(wrap - 33), (wrap - 33) * ms},
			{video(0), wrap * ms},
			{video(33), (wrap + 33) * ms},
		}},
		{"audio behind video across the wrap", []in{
			{video(wrap - 10), (wrap - 10) * ms},
			{video(23), (wrap + 23) * ms},
			{audio(wrap - 2), (wrap - 2) * ms},
			{audio(19), (wrap + 19) * ms},
			{video(56), (wrap + 56) * ms},
		}},
		{"sequence header at 0 before frames at an offset", []in{
			{&message.Video{Type: message.VideoTypeConfig, DTS: 0}, 0},
			{&message.Audio{Codec: message.CodecMPEG4Audio, AACType: message.AudioAACTypeConfig}, 0},
			{video(wrap - 1000), (wrap - 1000) * ms},
			{video(200), (wrap + 200) * ms},
		}},
		{"multitrack and enhanced frames", []in{
			{&message.VideoExCodedFrames{DTS: (wrap - 5) * ms}, (wrap - 5) * ms},
			{&message.VideoExMultitrack{Wrapped: &message.VideoExFramesX{DTS: 5 * ms}}, (wrap + 5) * ms},
			{&message.AudioExMultitrack{Wrapped: &message.AudioExCodedFrames{DTS: 8 * ms}}, (wrap + 8) * ms},
		}},
		{"two wraps", []in{
			{video(wrap - 1), (wrap - 1) * ms},
			{video(1 << 30), (wrap + 1<<30) * ms},
			{video(2 << 30), (wrap + 2<<30) * ms},
			{video(3 << 30), (wrap + 3<<30) * ms},
			{video(wrap - 1), (2*wrap - 1) * ms},
			{video(3), (2*wrap + 3) * ms},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var u rtmpUnwrap
			for i, m := range tc.msgs {
				u.adjust(m.msg)
				got, _ := messageDTS(m.msg)
				if got != m.want {
					t.Fatalf("message %d: %v, want %v", i, got, m.want)
				}
			}
		})
	}
}
