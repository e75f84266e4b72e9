package live

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Eyevinn/mp4ff/hevc"
	"github.com/Eyevinn/mp4ff/mp4"
	"github.com/bluenviron/gohlslib/v2"
	hlscodecs "github.com/bluenviron/gohlslib/v2/pkg/codecs"
	"github.com/bluenviron/gortmplib"
	rtmpcodecs "github.com/bluenviron/gortmplib/pkg/codecs"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/av1"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/opus"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	mp4codecs "github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"

	"github.com/shopcast/shopcast/internal/e2etest"
	"github.com/shopcast/shopcast/internal/server"
)

// mediaFrame is one access unit of a fixture, on the fixture's clock.
type mediaFrame struct {
	pts, dts time.Duration
	// data holds the NAL units (H.265), OBUs (AV1), the frame (VP9) or the
	// audio frame (AAC, Opus).
	data [][]byte
}

// mp4Fixture is a fragmented MP4 made by ffmpeg (testdata/README.md), read
// into access units for a publisher.
type mp4Fixture struct {
	video, audio mp4codecs.Codec
	// sampleEntries are the sample entry box types of the fixture's init
	// segment (hvc1, av01, vp09, Opus, mp4a), video first.
	sampleEntries []string
	// codecs are the RFC 6381 strings derived from the fixture's own
	// configuration boxes with mp4ff, video first.
	codecs      []string
	videoFrames []mediaFrame
	audioFrames []mediaFrame
	audioRate   int
	av1SeqHd    [][]byte
}

// span is the loop period: both tracks' ends, rounded up to a whole audio
// frame so that looped audio stays on its sample grid.
func (f *mp4Fixture) span() time.Duration {
	end := func(fr []mediaFrame) time.Duration {
		n := len(fr)
		return fr[n-1].dts + (fr[n-1].dts-fr[0].dts)/time.Duration(n-1)
	}
	s := max(end(f.videoFrames), end(f.audioFrames))
	n := len(f.audioFrames)
	step := (f.audioFrames[n-1].dts - f.audioFrames[0].dts) / time.Duration(n-1)
	return (s + step - 1) / step * step
}

func loadMP4Fixture(t *testing.T, path string) *mp4Fixture {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var init fmp4.Init
	if err := init.Unmarshal(bytes.NewReader(b)); err != nil {
		t.Fatalf("%s: init: %v", path, err)
	}
	moof := bytes.Index(b, []byte("moof"))
	if moof < 4 {
		t.Fatalf("%s: not a fragmented MP4", path)
	}
	var parts fmp4.Parts
	if err := parts.Unmarshal(b[moof-4:]); err != nil {
		t.Fatalf("%s: fragments: %v", path, err)
	}
	f := &mp4Fixture{}
	scales := map[int]uint32{}
	videoID := 0
	for _, tr := range init.Tracks {
		scales[tr.ID] = tr.TimeScale
		if tr.Codec.IsVideo() {
			videoID = tr.ID
		}
		if tr.Codec.IsVideo() {
			f.video = tr.Codec
		} else {
			f.audio = tr.Codec
			f.audioRate = int(tr.TimeScale)
		}
	}
	for _, p := range parts {
		for _, pt := range p.Tracks {
			ts := scales[pt.ID]
			dts := pt.BaseTime
			isVideo := pt.ID == videoID
			for _, s := range pt.Samples {
				fr := mediaFrame{
					dts: time.Duration(dts) * time.Second / time.Duration(ts),
					pts: time.Duration(int64(dts)+int64(s.PTSOffset)) * time.Second / time.Duration(ts),
				}
				dts += uint64(s.Duration)
				if !isVideo {
					fr.data = [][]byte{s.Payload}
					f.audioFrames = append(f.audioFrames, fr)
					continue
				}
				switch f.video.(type) {
				case *mp4codecs.H265:
					var au h264.AVCC
					if err := au.Unmarshal(s.Payload); err != nil {
						t.Fatal(err)
					}
					fr.data = au
				case *mp4codecs.AV1:
					var tu av1.Bitstream
					if err := tu.Unmarshal(s.Payload); err != nil {
						t.Fatal(err)
					}
					fr.data = tu
				default:
					fr.data = [][]byte{s.Payload}
				}
				f.videoFrames = append(f.videoFrames, fr)
			}
		}
	}
	if len(f.videoFrames) < 2 || len(f.audioFrames) < 2 {
		t.Fatalf("%s: %d video and %d audio frames", path, len(f.videoFrames), len(f.audioFrames))
	}

	// The codec strings and sample entries, read with mp4ff from the
	// fixture's own boxes, independently of the server's codec code.
	mf, err := mp4.DecodeFile(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s: mp4ff: %v", path, err)
	}
	for _, trak := range mf.Init.Moov.Traks {
		entry := trak.Mdia.Minf.Stbl.Stsd.Children[0]
		f.sampleEntries = append(f.sampleEntries, entry.Type())
		f.codecs = append(f.codecs, rfc6381(t, entry, b))
	}
	return f
}

// rfc6381 derives a CODECS value from a sample entry of the fixture.
func rfc6381(t *testing.T, entry mp4.Box, file []byte) string {
	switch e := entry.(type) {
	case *mp4.VisualSampleEntryBox:
		switch e.Type() {
		case "hvc1":
			sps, err := hevc.ParseSPSNALUnit(e.HvcC.GetNalusForType(hevc.NALU_SPS)[0])
			if err != nil {
				t.Fatal(err)
			}
			return hevc.CodecString("hvc1", sps)
		case "av01":
			// AV1-ISOBMFF Codecs Parameter String: av01.P.LLT.DD, from the
			// av1C fields (BitDepth 8, 10 or 12).
			c := e.Av1C.CodecConfRec
			tier, depth := "M", 8
			if c.SeqTier0 != 0 {
				tier = "H"
			}
			if c.HighBitdepth != 0 {
				depth = 10
				if c.TwelveBit != 0 {
					depth = 12
				}
			}
			return fmt.Sprintf("av01.%d.%02d%s.%02d", c.SeqProfile, c.SeqLevelIdx0, tier, depth)
		case "vp09":
			// VP9-ISOBMFF: vp09.PP.LL.DD from vpcC (version 1: profile,
			// level, bitDepth(4) chroma(3) range(1)); mp4ff has no vpcC type.
			i := bytes.Index(file, []byte("vpcC"))
			if i < 0 || len(file) < i+4+7 {
				t.Fatal("no vpcC")
			}
			v := file[i+4+4:]
			return fmt.Sprintf("vp09.%02d.%02d.%02d", v[0], v[1], v[2]>>4)
		}
	case *mp4.AudioSampleEntryBox:
		switch e.Type() {
		case "Opus":
			return "opus"
		case "mp4a":
			asc := e.Esds.DecConfigDescriptor.DecSpecificInfo.DecConfig
			return fmt.Sprintf("mp4a.40.%d", asc[0]>>3)
		}
	}
	t.Fatalf("no codec string for %s", entry.Type())
	return ""
}

// rtmpTrack is the Enhanced RTMP track for a fixture codec.
func rtmpTrack(c mp4codecs.Codec) *gortmplib.Track {
	switch c := c.(type) {
	case *mp4codecs.H265:
		return &gortmplib.Track{Codec: &rtmpcodecs.H265{VPS: c.VPS, SPS: c.SPS, PPS: c.PPS}}
	case *mp4codecs.AV1:
		return &gortmplib.Track{Codec: &rtmpcodecs.AV1{}}
	case *mp4codecs.VP9:
		return &gortmplib.Track{Codec: &rtmpcodecs.VP9{}}
	case *mp4codecs.Opus:
		return &gortmplib.Track{Codec: &rtmpcodecs.Opus{IDHeader: &opus.IDHeader{
			Version: 1, ChannelCount: uint8(c.ChannelCount), PreSkip: 312, InputSampleRate: 48000,
		}}}
	case *mp4codecs.MPEG4Audio:
		cfg := c.Config
		return &gortmplib.Track{Codec: &rtmpcodecs.MPEG4Audio{Config: &cfg}}
	}
	return nil
}

// isAV1TD reports a temporal delimiter OBU.
func isAV1TD(obu []byte) bool {
	return len(obu) > 0 && av1.OBUType((obu[0]>>3)&0xf) == av1.OBUTypeTemporalDelimiter
}

// publishEnhancedRTMP publishes a fixture loops times, paced in real time,
// with gortmplib's own client: Enhanced RTMP FourCC video (hvc1, av01, vp09)
// and Opus, the way OBS 30+ sends them.
func publishEnhancedRTMP(ctx context.Context, rawURL string, f *mp4Fixture, loops int) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return err
	}
	c := &gortmplib.Client{URL: u, Publish: true}
	if err := c.Initialize(ctx); err != nil {
		return err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, c.Close)
	defer stop()
	vt, at := rtmpTrack(f.video), rtmpTrack(f.audio)
	w := &gortmplib.Writer{Conn: c, Tracks: []*gortmplib.Track{vt, at}}
	if err := w.Initialize(); err != nil {
		return err
	}

	type item struct {
		video bool
		fr    mediaFrame
	}
	var items []item
	span := f.span()
	for l := range loops {
		off := time.Duration(l) * span
		for _, fr := range f.videoFrames {
			fr.pts += off
			fr.dts += off
			items = append(items, item{true, fr})
		}
		for _, fr := range f.audioFrames {
			fr.pts += off
			fr.dts += off
			items = append(items, item{false, fr})
		}
	}
	slices.SortStableFunc(items, func(a, b item) int { return int(a.fr.dts - b.fr.dts) })

	start := time.Now()
	for _, it := range items {
		if d := time.Until(start.Add(it.fr.dts)); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		fr := it.fr
		var err error
		switch vt.Codec.(type) {
		case *rtmpcodecs.H265:
			if it.video {
				err = w.WriteH265(vt, fr.pts, fr.dts, fr.data)
			}
		case *rtmpcodecs.AV1:
			if it.video {
				// gortmplib's Writer sends a placeholder av1C in the
				// sequence start: like OBS, send the sequence header in
				// band with every key frame. The Writer adds the temporal
				// delimiter itself.
				tu := slices.DeleteFunc(slices.Clone(fr.data), isAV1TD)
				if av1.IsRandomAccess2(tu) && !slices.ContainsFunc(tu, func(o []byte) bool {
					return av1.OBUType((o[0]>>3)&0xf) == av1.OBUTypeSequenceHeader
				}) {
					tu = append([][]byte{f.av1SeqHd[0]}, tu...)
				}
				err = w.WriteAV1(vt, fr.pts, tu)
			}
		case *rtmpcodecs.VP9:
			if it.video {
				err = w.WriteVP9(vt, fr.pts, fr.data[0])
			}
		}
		if !it.video {
			switch at.Codec.(type) {
			case *rtmpcodecs.Opus:
				err = w.WriteOpus(at, fr.pts, fr.data[0])
			case *rtmpcodecs.MPEG4Audio:
				err = w.WriteMPEG4Audio(at, fr.pts, fr.data[0])
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// timedAU is an access unit as a reader sees it: PTS in the track's clock
// rate, and a hash of its payload.
type timedAU struct {
	pts  int64
	hash uint64
}

func hashAU(data [][]byte) uint64 {
	h := fnv.New64a()
	for _, d := range data {
		h.Write(d)
		h.Write([]byte{0xff, 0x00, 0xff})
	}
	return h.Sum64()
}

// normaliseVideo drops what a packager may legitimately add or remove
// around the coded picture: parameter sets in front of H.265 IRAPs (the
// reader has them from hvcC) and AV1 temporal delimiters (AV1-ISOBMFF 2.4:
// TDs SHOULD be removed from samples).
func normaliseVideo(c mp4codecs.Codec, au [][]byte) [][]byte {
	switch c.(type) {
	case *mp4codecs.H265:
		return slices.DeleteFunc(slices.Clone(au), func(n []byte) bool {
			typ := (n[0] >> 1) & 0x3f
			return typ >= 32 && typ <= 34
		})
	case *mp4codecs.AV1:
		return slices.DeleteFunc(slices.Clone(au), isAV1TD)
	}
	return au
}

// wantAUs are a fixture track's frames sent loops times, in decode order.
func wantAUs(frames []mediaFrame, span time.Duration, loops int, rate int64, norm func([][]byte) [][]byte) []timedAU {
	var out []timedAU
	for l := range loops {
		for _, fr := range frames {
			pts := fr.pts + time.Duration(l)*span
			out = append(out, timedAU{pts: int64(pts) * rate / int64(time.Second), hash: hashAU(norm(fr.data))})
		}
	}
	return out
}

// matchAUs checks that got, shifted so that its first AU meets a sent AU
// with the same payload, is a subsequence of want (decode order) with equal
// payloads and PTS within tol.
func matchAUs(got, want []timedAU, tol int64) error {
	err := matchInOrder(got, want, tol, func(i int, g timedAU, off int64) error {
		return fmt.Errorf("received AU %d (PTS %d from the first) matches no sent AU in order%s", i, g.pts-got[0].pts, nearest(g, off, want))
	})
	if errors.Is(err, errNoAlignment) {
		return fmt.Errorf("the first received AU's payload was never sent")
	}
	return err
}

// nearest describes the sent AUs with the payload of g, for a failure.
func nearest(g timedAU, off int64, want []timedAU) string {
	var b strings.Builder
	for i, w := range want {
		if w.hash == g.hash {
			fmt.Fprintf(&b, "; sent AU %d with that payload is %d ticks away", i, w.pts-(g.pts+off))
		}
	}
	return b.String()
}

func absInt(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

// codecReceived is what gohlslib's Client read from a stream of any codec.
type codecReceived struct {
	mu           sync.Mutex
	video, audio []timedAU
	videoCodec   hlscodecs.Codec
	audioCodec   hlscodecs.Codec
}

// readHLSCodecs reads a stream with gohlslib's Client until the playlist
// ends, keeping every AU's PTS and payload hash.
func readHLSCodecs(t *testing.T, uri string, norm func([][]byte) [][]byte, timeout time.Duration) *codecReceived {
	t.Helper()
	r := &codecReceived{}
	c := &gohlslib.Client{URI: uri, StartDistance: 20, MaxDistance: 40}
	addVideo := func(pts int64, au [][]byte) {
		r.mu.Lock()
		r.video = append(r.video, timedAU{pts, hashAU(norm(au))})
		r.mu.Unlock()
	}
	addAudio := func(pts int64, frames [][]byte, step int64) {
		r.mu.Lock()
		for i, fr := range frames {
			r.audio = append(r.audio, timedAU{pts + int64(i)*step, hashAU([][]byte{fr})})
		}
		r.mu.Unlock()
	}
	c.OnTracks = func(tracks []*gohlslib.Track) error {
		for _, tr := range tracks {
			switch tr.Codec.(type) {
			case *hlscodecs.H264, *hlscodecs.H265:
				r.videoCodec = tr.Codec
				c.OnDataH26x(tr, func(pts, _ int64, au [][]byte) { addVideo(pts, au) })
			case *hlscodecs.AV1:
				r.videoCodec = tr.Codec
				c.OnDataAV1(tr, addVideo)
			case *hlscodecs.VP9:
				r.videoCodec = tr.Codec
				c.OnDataVP9(tr, func(pts int64, frame []byte) { addVideo(pts, [][]byte{frame}) })
			case *hlscodecs.Opus:
				r.audioCodec = tr.Codec
				c.OnDataOpus(tr, func(pts int64, packets [][]byte) { addAudio(pts, packets, 960) })
			case *hlscodecs.MPEG4Audio:
				r.audioCodec = tr.Codec
				c.OnDataMPEG4Audio(tr, func(pts int64, aus [][]byte) { addAudio(pts, aus, 1024) })
			default:
				t.Errorf("gohlslib found an unexpected track %T", tr.Codec)
			}
		}
		return nil
	}
	if err := c.Start(); err != nil {
		t.Fatalf("gohlslib client: %v", err)
	}
	defer c.Close()
	select {
	case err := <-wait2(c):
		if err != nil && !strings.Contains(err.Error(), "ended") {
			t.Logf("gohlslib client stopped: %v", err)
		}
	case <-time.After(timeout):
		t.Fatalf("gohlslib client did not reach the end of the stream")
	}
	return r
}

// TestE2EEnhancedRTMPCodecs publishes H.265, AV1 and VP9 with AAC or Opus
// over Enhanced RTMP with gortmplib's own client (ffmpeg 5.1 cannot send
// Enhanced RTMP), and checks what a player gets: the multivariant CODECS
// equal to the strings derived from the encoder's own configuration boxes,
// the init segment's sample entries (read with mp4ff), and every AU that
// gohlslib's Client reads equal to a sent one, in order, at its PTS.
func TestE2EEnhancedRTMPCodecs(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	for _, tc := range []struct {
		name    string
		fixture string
	}{
		{"H265+AAC", "../../testdata/h265_aac.mp4"},
		{"AV1+Opus", "../../testdata/av1_opus.mp4"},
		{"VP9+Opus", "../../testdata/vp9_opus.mp4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := loadMP4Fixture(t, tc.fixture)
			if sh, ok := f.video.(*mp4codecs.AV1); ok {
				// The sequence header the encoder sent in band with its first
				// key frame (SVT-AV1's differs from the one ffmpeg put in
				// av1C), else av1C's.
				f.av1SeqHd = [][]byte{sh.SequenceHeader}
				for _, obu := range f.videoFrames[0].data {
					if av1.OBUType((obu[0]>>3)&0xf) == av1.OBUTypeSequenceHeader {
						f.av1SeqHd = [][]byte{obu}
					}
				}
			}
			const loops = 2
			srv := startServer(t, func(c *server.Config) { c.GracePeriod, c.EndedLinger = time.Second, 10*time.Second })
			name := strings.NewReplacer("+", "-").Replace(strings.ToLower(tc.name))
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			pubErr := make(chan error, 1)
			go func() { pubErr <- publishEnhancedRTMP(ctx, srv.RTMP+"/live/"+name, f, loops) }()

			base := srv.HTTP + "/live/" + name + "/"
			e2etest.WaitUntil(t, 15*time.Second, "the stream to appear", func() bool {
				code, _, _ := e2etest.Get(t, base+"index.m3u8")
				return code == 200
			})

			// CODECS: what the fixture's encoder declared, in track order.
			_, mv, _ := e2etest.Get(t, base+"index.m3u8")
			want := `CODECS="` + strings.Join(f.codecs, ",") + `"`
			if got := codecsAttr(string(mv)); !strings.EqualFold(got, want) && !avPrefixMatch(got, f.codecs) {
				t.Errorf("multivariant %s, want %s:\n%s", got, want, mv)
			}
			if !strings.Contains(string(mv), "RESOLUTION=640x360") {
				t.Errorf("multivariant playlist lacks RESOLUTION=640x360:\n%s", mv)
			}

			// The init segment: sample entries and configuration as sent.
			_, media, _ := e2etest.Get(t, base+"stream.m3u8")
			initURI := ""
			for _, line := range strings.Split(string(media), "\n") {
				if strings.HasPrefix(line, "#EXT-X-MAP:URI=") {
					initURI = strings.Trim(strings.TrimPrefix(line, "#EXT-X-MAP:URI="), `"`)
				}
			}
			if initURI == "" {
				t.Fatalf("no EXT-X-MAP:\n%s", media)
			}
			_, initBody, _ := e2etest.Get(t, base+initURI)
			checkInit(t, initBody, f)

			checker := newPlaylistChecker(t, base)
			checker.start(ctx)

			norm := func(au [][]byte) [][]byte { return normaliseVideo(f.video, au) }
			// gohlslib's Client picks variants by CODECS prefix and knows
			// no av01 or vp09 there (it reads them from fMP4): give it the
			// media playlist of those.
			uri := base + "index.m3u8"
			if !strings.HasPrefix(f.codecs[0], "hvc1") {
				uri = base + "stream.m3u8"
			}
			r := readHLSCodecs(t, uri, norm, 40*time.Second)
			if err := <-pubErr; err != nil {
				t.Fatalf("publish: %v", err)
			}
			checker.wait()
			if !checker.ended {
				t.Error("the playlist never got EXT-X-ENDLIST")
			}
			if checker.videoSamples != loops*len(f.videoFrames) {
				t.Errorf("video samples in segments: %d, sent %d", checker.videoSamples, loops*len(f.videoFrames))
			}

			r.mu.Lock()
			defer r.mu.Unlock()
			span := f.span()
			// RTMP carries milliseconds: PTS within 1 ms.
			if err := matchAUs(r.video, wantAUs(f.videoFrames, span, loops, 90000, norm), 90); err != nil {
				t.Errorf("video: %v", err)
			}
			if err := matchAUs(r.audio, wantAUs(f.audioFrames, span, loops, int64(f.audioRate), identAU), int64(f.audioRate/1000)); err != nil {
				t.Errorf("audio: %v", err)
			}
			if len(r.video) < 60 || len(r.audio) < 50 {
				t.Errorf("gohlslib read %d video AUs and %d audio frames", len(r.video), len(r.audio))
			}
			t.Logf("%s: %d video AUs and %d audio frames read, payloads and PTS as sent; %s", tc.name, len(r.video), len(r.audio), want)
		})
	}
}

// wait2 delivers the error that ends c, for a select with a deadline
// (Client.Wait2 blocks).
func wait2(c *gohlslib.Client) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- c.Wait2() }()
	return ch
}

// codecsAttr returns the CODECS="..." attribute of a multivariant playlist.
func codecsAttr(mv string) string {
	i := strings.Index(mv, `CODECS="`)
	if i < 0 {
		return ""
	}
	j := strings.Index(mv[i+8:], `"`)
	if j < 0 {
		return ""
	}
	return mv[i : i+8+j+1]
}

// avPrefixMatch accepts the long form of an av01 string (AV1-ISOBMFF: the
// optional colour fields may follow), when the other codecs are equal.
func avPrefixMatch(attr string, want []string) bool {
	got := strings.Split(strings.TrimSuffix(strings.TrimPrefix(attr, `CODECS="`), `"`), ",")
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if strings.EqualFold(got[i], want[i]) {
			continue
		}
		if !strings.HasPrefix(want[i], "av01.") || !strings.HasPrefix(got[i], want[i]+".") {
			return false
		}
	}
	return true
}

// checkInit reads the served init segment with mp4ff: one track per fixture
// track, with the fixture's sample entry types and codec configuration.
func checkInit(t *testing.T, body []byte, f *mp4Fixture) {
	t.Helper()
	mf, err := mp4.DecodeFile(bytes.NewReader(body))
	if err != nil || mf.Init == nil {
		t.Fatalf("mp4ff cannot decode the init segment: %v", err)
	}
	var entries []string
	for _, trak := range mf.Init.Moov.Traks {
		entry := trak.Mdia.Minf.Stbl.Stsd.Children[0]
		entries = append(entries, entry.Type())
		switch e := entry.(type) {
		case *mp4.VisualSampleEntryBox:
			if e.Width != 640 || e.Height != 360 {
				t.Errorf("%s: %dx%d, want 640x360", e.Type(), e.Width, e.Height)
			}
			switch c := f.video.(type) {
			case *mp4codecs.H265:
				if e.HvcC == nil || !bytes.Equal(e.HvcC.GetNalusForType(hevc.NALU_SPS)[0], c.SPS) ||
					!bytes.Equal(e.HvcC.GetNalusForType(hevc.NALU_VPS)[0], c.VPS) {
					t.Errorf("hvcC does not carry the publisher's VPS/SPS")
				}
			case *mp4codecs.AV1:
				if e.Av1C == nil || !bytes.Contains(e.Av1C.ConfigOBUs, f.av1SeqHd[0][1:]) {
					t.Errorf("av1C does not carry the sequence header the publisher sent: %x, want %x", e.Av1C.ConfigOBUs, f.av1SeqHd[0])
				}
			}
			if got := rfc6381(t, entry, body); !strings.EqualFold(got, f.codecs[0]) {
				t.Errorf("init segment declares %s, the publisher's encoder %s", got, f.codecs[0])
			}
		case *mp4.AudioSampleEntryBox:
			if e.Type() == "Opus" {
				if e.Dops == nil || e.Dops.OutputChannelCount != 2 {
					t.Errorf("Opus sample entry without a 2-channel dOps")
				}
				if e.SampleRate != 48000 {
					t.Errorf("Opus sample entry at %d Hz, want 48000", e.SampleRate)
				}
			}
		}
	}
	if !slices.Equal(entries, f.sampleEntries) {
		t.Errorf("init segment sample entries %v, want %v", entries, f.sampleEntries)
	}
}
