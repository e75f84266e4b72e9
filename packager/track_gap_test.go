package packager

import (
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"

	"github.com/shopcast/shopcast/ingest"
)

// TestAudioGap checks that a gap in a publisher's audio (AAC priming, a
// dropped frame, a looped file) keeps every frame at its own time: inside an
// open part the frame before the gap lasts until the next one, since a trun
// has no per-sample decode times; after a closed part the next part starts
// at the frame's time.
func TestAudioGap(t *testing.T) {
	in := &ingest.Track{ID: 2, Codec: &codecs.MPEG4Audio{Config: mpeg4audio.AudioSpecificConfig{
		Type: mpeg4audio.ObjectTypeAACLC, SampleRate: 48000, ChannelConfig: 2,
	}}}
	for _, sealed := range []bool{false, true} {
		tr, err := newTrack(in, 2)
		if err != nil {
			t.Fatal(err)
		}
		at := func(d time.Duration) *sample {
			t.Helper()
			s, err := tr.build(&ingest.Unit{Track: in, PTS: d, DTS: d, Frame: []byte{1}}, 0, 0)
			if err != nil || s == nil {
				t.Fatalf("build: %v", err)
			}
			return s
		}
		first := at(0)
		second := at(1024 * time.Second / 48000)
		if sealed {
			tr.seal()
		}
		third := at(100 * time.Millisecond) // 45 ms after the second frame ends
		if third.dts != 4800 {
			t.Errorf("sealed=%v: frame after the gap at %d, want 4800", sealed, third.dts)
		}
		want := uint32(4800 - 1024)
		if sealed {
			want = 1024
		}
		if first.Duration != 1024 || second.Duration != want {
			t.Errorf("sealed=%v: durations %d, %d, want 1024, %d", sealed, first.Duration, second.Duration, want)
		}
	}
}
