package packager

import (
	"bytes"
	"testing"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4/seekablebuffer"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"
)

// TestVP9Level checks the VP9 level in the codecs string and in the init
// segment's vpcC: the level libvpx declares for the same size at 30 fps.
func TestVP9Level(t *testing.T) {
	for _, tc := range []struct {
		w, h int
		want string
	}{
		{256, 144, "vp09.00.11.08"},
		{640, 360, "vp09.00.21.08"}, // ffmpeg's vpcC for testdata/vp9_opus.mp4
		{1280, 720, "vp09.00.31.08"},
		{1920, 1080, "vp09.00.40.08"},
		{3840, 2160, "vp09.00.50.08"},
	} {
		c := &codecs.VP9{Width: tc.w, Height: tc.h, BitDepth: 8, ChromaSubsampling: 1}
		if got := codecString(c); got != tc.want {
			t.Errorf("%dx%d: %s, want %s", tc.w, tc.h, got, tc.want)
		}
		init := fmp4.Init{Tracks: []*fmp4.InitTrack{{ID: 1, TimeScale: 90000, Codec: c}}}
		var buf seekablebuffer.Buffer
		if err := init.Marshal(&buf); err != nil {
			t.Fatal(err)
		}
		body := buf.Bytes()
		setVP9Level(body, []codecs.Codec{c})
		i := bytes.Index(body, []byte("vpcC"))
		if i < 0 || body[i+4+5] != vp9Level(c) {
			t.Errorf("%dx%d: vpcC level not set", tc.w, tc.h)
		}
	}
}
