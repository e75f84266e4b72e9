package packager

import (
	"bytes"
	"fmt"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"
)

// vp9Levels are the VP9 levels (VP9 Bitstream & Decoding Process
// Specification, Annex A) as the two digits of the vp09 codec string, with
// their maximum luma sample rate and luma picture size.
var vp9Levels = []struct {
	level      uint8
	sampleRate int64
	picture    int64
}{
	{10, 829440, 36864}, {11, 2764800, 73728},
	{20, 4608000, 122880}, {21, 9216000, 245760},
	{30, 20736000, 552960}, {31, 36864000, 983040},
	{40, 83558400, 2228224}, {41, 160432128, 2228224},
	{50, 311951360, 8912896}, {51, 588251136, 8912896}, {52, 1176502272, 8912896},
	{60, 1176502272, 35651584}, {61, 2353004544, 35651584}, {62, 4706009088, 35651584},
}

// vp9AssumedFrameRate is the frame rate a VP9 level is computed for: the
// init segment is written before any frame rate is known, and 30 fps is
// OBS's default.
const vp9AssumedFrameRate = 30

// vp9Level returns the lowest VP9 level that holds the picture size at
// vp9AssumedFrameRate. mediacommon's vpcC and gohlslib's codec string both
// declare level 1 whatever the size, which is wrong above 256x144
// (VP9-ISOBMFF: the level in vpcC and in the codecs parameter must be the
// stream's).
func vp9Level(c *codecs.VP9) uint8 {
	pic := int64(c.Width) * int64(c.Height)
	for _, l := range vp9Levels {
		if pic <= l.picture && pic*vp9AssumedFrameRate <= l.sampleRate {
			return l.level
		}
	}
	return 62
}

// vp9CodecString is the vp09.PP.LL.DD codecs parameter (VP9-ISOBMFF,
// "Codecs Parameter String").
func vp9CodecString(c *codecs.VP9) string {
	return fmt.Sprintf("vp09.%02d.%02d.%02d", c.Profile, vp9Level(c), c.BitDepth)
}

// setVP9Level writes the level of each VP9 track into the vpcC boxes of an
// init segment that mediacommon marshalled (vpcC version 1: version, flags,
// profile, level, ...). Only VP9 tracks have a vpcC, in track order.
func setVP9Level(init []byte, tracks []codecs.Codec) {
	for _, c := range tracks {
		vp9, ok := c.(*codecs.VP9)
		if !ok {
			continue
		}
		i := bytes.Index(init, []byte("vpcC"))
		if i < 0 || len(init) < i+4+6 {
			return
		}
		init[i+4+5] = vp9Level(vp9)
		init = init[i+4:]
	}
}
