package packager

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/asticode/go-astits"
	"github.com/bluenviron/gohlslib/v2/pkg/playlist"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"

	"github.com/shopcast/shopcast/ingest"
	"github.com/shopcast/shopcast/internal/hlsname"
)

// testID3 returns an ID3v2.4 tag with one TXXX frame, built by hand so that
// the test does not depend on the cues package's encoder.
func testID3(value string) []byte {
	frame := append([]byte{3}, "shopcast\x00"+value...)
	size := func(n int) []byte {
		return []byte{byte(n >> 21 & 0x7f), byte(n >> 14 & 0x7f), byte(n >> 7 & 0x7f), byte(n & 0x7f)}
	}
	tag := append([]byte("ID3\x04\x00\x00"), size(10+len(frame))...)
	tag = append(tag, "TXXX"...)
	tag = append(tag, size(len(frame))...)
	tag = append(tag, 0, 0)
	return append(tag, frame...)
}

func testDateRange(id string) *DateRange {
	return &DateRange{Class: "com.shopcast.product", Attrs: []DateRangeAttr{QuotedAttr("X-TEST-ID", id)}}
}

// tsPES is a PES packet as go-astits reads it.
type tsPES struct {
	pid      uint16
	streamID uint8
	pts, dts int64 // dts is pts when the header has no DTS
	hasDTS   bool
	aligned  bool
	data     []byte
}

// tsDemuxed is a TS segment as go-astits reads it.
type tsDemuxed struct {
	pat *astits.PATData
	pmt *astits.PMTData
	pes []tsPES
}

func demuxTS(t testing.TB, body []byte) tsDemuxed {
	t.Helper()
	if len(body)%tsPacketSize != 0 {
		t.Fatalf("TS segment of %d bytes, not a whole number of packets", len(body))
	}
	var out tsDemuxed
	dmx := astits.NewDemuxer(context.Background(), bytes.NewReader(body))
	for {
		d, err := dmx.NextData()
		if errors.Is(err, astits.ErrNoMorePackets) {
			break
		}
		if err != nil {
			t.Fatalf("go-astits: %v", err)
		}
		switch {
		case d.PAT != nil:
			out.pat = d.PAT
		case d.PMT != nil:
			if out.pat == nil {
				t.Fatal("PMT before PAT")
			}
			out.pmt = d.PMT
		case d.PES != nil:
			if out.pmt == nil {
				t.Fatal("PES before PMT")
			}
			oh := d.PES.Header.OptionalHeader
			if oh == nil || oh.PTS == nil {
				t.Fatalf("PES on PID %d without PTS", d.PID)
			}
			p := tsPES{pid: d.PID, streamID: d.PES.Header.StreamID, pts: oh.PTS.Base, dts: oh.PTS.Base,
				aligned: oh.DataAlignmentIndicator, data: d.PES.Data}
			if oh.DTS != nil {
				p.dts, p.hasDTS = oh.DTS.Base, true
			}
			out.pes = append(out.pes, p)
		}
	}
	return out
}

// ccChecker checks that continuity counters run on across segments.
type ccChecker map[uint16]byte

func (cc ccChecker) add(t testing.TB, body []byte) {
	t.Helper()
	for i := 0; i+tsPacketSize <= len(body); i += tsPacketSize {
		p := body[i : i+tsPacketSize]
		if p[0] != 0x47 {
			t.Fatalf("packet %d: sync byte %#x", i/tsPacketSize, p[0])
		}
		pid := uint16(p[1]&0x1f)<<8 | uint16(p[2])
		if p[3]&0x10 == 0 {
			continue
		}
		c := p[3] & 0x0f
		if last, ok := cc[pid]; ok && c != (last+1)&0x0f {
			t.Fatalf("PID %d: continuity counter %d after %d", pid, c, last)
		}
		cc[pid] = c
	}
}

func descriptorContent(ds []*astits.Descriptor, tag uint8) []byte {
	for _, d := range ds {
		if d.Tag == tag && d.Unknown != nil {
			return d.Unknown.Content
		}
	}
	return nil
}

func nalTypes(t testing.TB, annexB []byte) []h264.NALUType {
	t.Helper()
	var au h264.AnnexB
	if err := au.Unmarshal(annexB); err != nil {
		t.Fatalf("video PES is not Annex-B: %v", err)
	}
	var out []h264.NALUType
	for _, n := range au {
		out = append(out, h264.NALUType(n[0]&0x1f))
	}
	return out
}

type id3Seen struct {
	msn  int64
	pts  int64
	data []byte
}

// TestTSRendition publishes H.264 + AAC with two cues (one ended with
// EndEvent) and reads the TS rendition with go-astits: every segment of the
// fMP4 playlist has a TS twin with the same MSN, duration, discontinuity
// and program date-time; the TS carries the same video and audio samples
// at the fMP4 times plus tsTimeOffset; the PMT declares the ID3 stream with
// Apple's descriptors; the cue tags arrive in ID3 PES packets at the cue's
// media time, re-sent at the start of each segment while the cue is
// active; and the playlist has the fMP4 playlist's EXT-X-DATERANGE lines.
func TestTSRendition(t *testing.T) {
	for _, bframes := range []bool{false, true} {
		t.Run(fmt.Sprintf("bframes=%v", bframes), func(t *testing.T) {
			m := newTestManager(t, Config{})
			sy := publish(t, m, func(s *synth) { s.bframes = bframes })
			sy.next()
			s, _ := m.Stream("test")

			tag1, tag2, end2 := testID3(`{"id":"c1"}`), testID3(`{"id":"c2"}`), testID3(`{"id":"c2","end":true}`)
			if _, err := s.AddEvent(Event{ID: "c1", Time: 3500 * time.Millisecond, Duration: time.Second,
				ID3: tag1, EmsgID: 2, DateRange: testDateRange("c1")}); err != nil {
				t.Fatal(err)
			}
			if _, err := s.AddEvent(Event{ID: "c2", Time: 5200 * time.Millisecond,
				ID3: tag2, EmsgID: 4, End: EventEnd{ID3: end2, EmsgID: 5}, DateRange: testDateRange("c2")}); err != nil {
				t.Fatal(err)
			}
			sy.frames(7 * 30)
			endAt, err := s.EndEvent("c2")
			if err != nil {
				t.Fatal(err)
			}
			sy.frames(5 * 30)

			fm := parsePlaylist(t, mustFetch(t, m, mediaReq(-1, -1, SkipNone)).Body)
			tsResp := mustFetch(t, m, fileReq(hlsname.TSMedia))
			if tsResp.Kind != KindPlaylist || tsResp.ContentType != "application/vnd.apple.mpegurl" {
				t.Fatalf("kind %v, content type %q", tsResp.Kind, tsResp.ContentType)
			}
			tm := parsePlaylist(t, tsResp.Body)
			text := string(tsResp.Body)
			for _, no := range []string{"#EXT-X-PART", "#EXT-X-SERVER-CONTROL", "#EXT-X-PRELOAD-HINT", "#EXT-X-MAP", ".m4s"} {
				if strings.Contains(text, no) {
					t.Fatalf("TS playlist has %s\n%s", no, text)
				}
			}
			if len(fm.Segments) < 5 || len(tm.Segments) != len(fm.Segments) || tm.MediaSequence != fm.MediaSequence ||
				tm.TargetDuration != fm.TargetDuration || tm.DiscontinuitySequence != fm.DiscontinuitySequence {
				t.Fatalf("TS playlist does not match the fMP4 one:\n%s\n%s", tsResp.Body, mustFetch(t, m, mediaReq(-1, -1, SkipNone)).Body)
			}
			if got, want := dateRangeLines(tsResp.Body), dateRangeLines(mustFetch(t, m, mediaReq(-1, -1, SkipNone)).Body); len(want) != 2 || strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("DATERANGE lines %q, fMP4 playlist has %q", got, want)
			}

			off := clock90k(tsTimeOffset)
			cc := ccChecker{}
			var id3s []id3Seen
			segStart := map[int64]int64{} // first video DTS of each TS segment
			for i, fseg := range fm.Segments {
				tseg := tm.Segments[i]
				msn := int64(fm.MediaSequence + i)
				if tseg.URI != fmt.Sprintf("seg%d.ts", msn) || fseg.URI != fmt.Sprintf("seg%d.m4s", msn) ||
					tseg.Duration != fseg.Duration || !tseg.DateTime.Equal(*fseg.DateTime) || tseg.Discontinuity != fseg.Discontinuity {
					t.Fatalf("segment %d: TS %+v, fMP4 %+v", msn, tseg, fseg)
				}
				resp := mustFetch(t, m, fileReq(tseg.URI))
				if resp.Kind != KindSegment || resp.ContentType != "video/mp2t" {
					t.Fatalf("kind %v, content type %q", resp.Kind, resp.ContentType)
				}
				if again := mustFetch(t, m, fileReq(tseg.URI)); &again.Body[0] != &resp.Body[0] {
					t.Fatal("a TS segment is not one shared buffer")
				}
				cc.add(t, resp.Body)
				d := demuxTS(t, resp.Body)
				checkPMT(t, d)

				// The samples of the fMP4 segment, as mp4ff reads them, on
				// the 90 kHz clock plus the offset.
				var wantVideo, wantAudio [][2]int64
				for _, fr := range decodeFragments(t, mustFetch(t, m, fileReq(fseg.URI)).Body) {
					if run, ok := fr.tracks[1]; ok {
						dts := int64(run.tfdt)
						for _, smp := range run.samples {
							wantVideo = append(wantVideo, [2]int64{dts + int64(smp.CompositionTimeOffset) + off, dts + off})
							dts += int64(smp.Dur)
						}
					}
					if run, ok := fr.tracks[2]; ok {
						dts := run.tfdt
						for _, smp := range run.samples {
							p := int64((dts*90000+24000)/48000) + off
							wantAudio = append(wantAudio, [2]int64{p, p})
							dts += uint64(smp.Dur)
						}
					}
				}
				var gotVideo, gotAudio [][2]int64
				lastDTS := int64(-1)
				for j, p := range d.pes {
					if !p.aligned {
						t.Fatalf("PES %d without data_alignment_indicator", j)
					}
					switch p.pid {
					case 0x100:
						if p.streamID != 0xE0 || p.hasDTS && p.dts == p.pts {
							t.Fatalf("video PES stream_id %#x, DTS %v", p.streamID, p.hasDTS)
						}
						gotVideo = append(gotVideo, [2]int64{p.pts, p.dts})
						if len(gotVideo) == 1 {
							segStart[msn] = p.dts
						}
						types := nalTypes(t, p.data)
						want := []h264.NALUType{h264.NALUTypeAccessUnitDelimiter, h264.NALUTypeNonIDR}
						if len(gotVideo) == 1 {
							want = []h264.NALUType{h264.NALUTypeAccessUnitDelimiter, h264.NALUTypeSPS, h264.NALUTypePPS, h264.NALUTypeIDR}
						}
						if fmt.Sprint(types) != fmt.Sprint(want) {
							t.Fatalf("segment %d video AU %d: NAL units %v, want %v", msn, len(gotVideo)-1, types, want)
						}
						// Decode order across tracks.
						if p.dts < lastDTS {
							t.Fatalf("video DTS %d after %d", p.dts, lastDTS)
						}
						lastDTS = p.dts
					case 0x101:
						if p.streamID != 0xC0 || len(p.data) != 7+200 || p.data[0] != 0xFF || p.data[1]&0xF0 != 0xF0 {
							t.Fatalf("audio PES is not one ADTS frame: stream_id %#x, %d bytes", p.streamID, len(p.data))
						}
						gotAudio = append(gotAudio, [2]int64{p.pts, p.dts})
					case 0x102:
						if p.streamID != 0xBD {
							t.Fatalf("ID3 PES stream_id %#x, want 0xBD", p.streamID)
						}
						id3s = append(id3s, id3Seen{msn: msn, pts: p.pts, data: p.data})
					default:
						t.Fatalf("PES on PID %#x", p.pid)
					}
				}
				if fmt.Sprint(gotVideo) != fmt.Sprint(wantVideo) {
					t.Fatalf("segment %d video PTS/DTS\n got %v\nwant %v", msn, gotVideo, wantVideo)
				}
				if fmt.Sprint(gotAudio) != fmt.Sprint(wantAudio) {
					t.Fatalf("segment %d audio PTS\n got %v\nwant %v", msn, gotAudio, wantAudio)
				}
			}

			// c1 at 3.5 s (segment 1) lasts 1 s: re-sent at segment 2's
			// start (its first DTS); c2 at 5.2 s (segment 2) is re-sent at
			// segment 3's start, and ends there.
			want := []id3Seen{
				{1, clock90k(3500*time.Millisecond) + off, tag1},
				{2, segStart[2], tag1},
				{2, clock90k(5200*time.Millisecond) + off, tag2},
				{3, segStart[3], tag2},
				{3, clock90k(endAt.Media) + off, end2},
			}
			if endAt.Media < 6*time.Second || endAt.Media >= 8*time.Second {
				t.Fatalf("c2 ended at %v, the test expects segment 3", endAt.Media)
			}
			if fmt.Sprint(id3s) != fmt.Sprint(want) {
				t.Fatalf("ID3 PES\n got %v\nwant %v", id3s, want)
			}

			// index_ts.m3u8 lists stream_ts.m3u8; index.m3u8 does not.
			mv := mustFetch(t, m, fileReq(hlsname.TSMultivariant))
			pl, err := playlist.Unmarshal(mv.Body)
			if err != nil {
				t.Fatalf("gohlslib cannot parse index_ts.m3u8: %v\n%s", err, mv.Body)
			}
			mvp, ok := pl.(*playlist.Multivariant)
			if !ok || len(mvp.Variants) != 1 || mvp.Variants[0].URI != hlsname.TSMedia || mvp.Variants[0].Bandwidth <= 0 ||
				strings.Join(mvp.Variants[0].Codecs, ",") != "avc1.64001e,mp4a.40.2" {
				t.Fatalf("index_ts.m3u8:\n%s", mv.Body)
			}
			if bytes.Contains(mustFetch(t, m, fileReq("index.m3u8")).Body, []byte("_ts")) {
				t.Fatal("the fMP4 multivariant playlist lists the TS rendition")
			}
		})
	}
}

// checkPMT asserts the program of a TS segment: H.264 on 0x100, AAC on
// 0x101, ID3 (stream_type 0x15 with a metadata_descriptor 'ID3 ') on 0x102,
// and a metadata_pointer_descriptor 'ID3 ' in program_info.
func checkPMT(t testing.TB, d tsDemuxed) {
	t.Helper()
	if d.pat == nil || len(d.pat.Programs) != 1 || d.pat.Programs[0].ProgramMapID != tsPIDPMT {
		t.Fatalf("PAT %+v", d.pat)
	}
	pmt := d.pmt
	if pmt == nil || pmt.PCRPID != 0x100 || len(pmt.ElementaryStreams) != 3 {
		t.Fatalf("PMT %+v", pmt)
	}
	id3 := []byte{0xFF, 0xFF, 'I', 'D', '3', ' ', 0xFF, 'I', 'D', '3', ' '}
	if c := descriptorContent(pmt.ProgramDescriptors, 0x25); !bytes.Equal(c, append(append([]byte{}, id3...), 0x00, 0x1F, 0x00, 0x01)) {
		t.Fatalf("metadata_pointer_descriptor % x", c)
	}
	for i, want := range []struct {
		typ astits.StreamType
		pid uint16
	}{{astits.StreamTypeH264Video, 0x100}, {astits.StreamTypeAACAudio, 0x101}, {astits.StreamTypeMetadata, 0x102}} {
		es := pmt.ElementaryStreams[i]
		if es.StreamType != want.typ || es.ElementaryPID != want.pid {
			t.Fatalf("PMT stream %d: type %#x PID %#x", i, es.StreamType, es.ElementaryPID)
		}
	}
	if c := descriptorContent(pmt.ElementaryStreams[2].ElementaryStreamDescriptors, 0x26); !bytes.Equal(c, append(append([]byte{}, id3...), 0x00, 0x0F)) {
		t.Fatalf("metadata_descriptor % x", c)
	}
}

func parsePlaylist(t testing.TB, body []byte) *playlist.Media {
	t.Helper()
	pl, err := playlist.Unmarshal(body)
	if err != nil {
		t.Fatalf("gohlslib cannot parse the playlist: %v\n%s", err, body)
	}
	mp, ok := pl.(*playlist.Media)
	if !ok {
		t.Fatalf("not a media playlist: %T", pl)
	}
	return mp
}

func dateRangeLines(body []byte) []string {
	var out []string
	for _, l := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(l, "#EXT-X-DATERANGE:") {
			out = append(out, l)
		}
	}
	return out
}

// TestTSDiscontinuity: a new publisher starts a new fMP4 segment after
// EXT-X-DISCONTINUITY; the TS playlist has the same discontinuity, and its
// timestamps carry on from the media timeline.
func TestTSDiscontinuity(t *testing.T) {
	m := newTestManager(t, Config{})
	sy := publish(t, m)
	sy.frames(4*30 + 1)
	sy.pub.Close()
	sy2 := publish(t, m)
	sy2.frames(4*30 + 1)

	fm := parsePlaylist(t, mustFetch(t, m, mediaReq(-1, -1, SkipNone)).Body)
	tm := parsePlaylist(t, mustFetch(t, m, fileReq(hlsname.TSMedia)).Body)
	if len(tm.Segments) != len(fm.Segments) || len(fm.Segments) < 4 {
		t.Fatalf("%d TS segments, %d fMP4", len(tm.Segments), len(fm.Segments))
	}
	discs := 0
	for i := range fm.Segments {
		if tm.Segments[i].Discontinuity != fm.Segments[i].Discontinuity {
			t.Fatalf("segment %d: discontinuity %v, fMP4 %v", i, tm.Segments[i].Discontinuity, fm.Segments[i].Discontinuity)
		}
		if tm.Segments[i].Discontinuity {
			discs++
		}
	}
	if discs != 1 {
		t.Fatalf("%d discontinuities", discs)
	}
	cc := ccChecker{}
	for _, seg := range tm.Segments {
		body := mustFetch(t, m, fileReq(seg.URI)).Body
		cc.add(t, body)
		checkPMT(t, demuxTS(t, body))
	}
	if _, err := fetchNow(m, fileReq("seg99.ts")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("seg99.ts: %v", err)
	}
	if _, err := fetchNow(m, fileReq("segx.ts")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("segx.ts: %v", err)
	}
}

// TestTSPlaylistWaitsForFirstSegment: before the first segment the TS
// playlist request waits for it (like stream.m3u8), then answers.
func TestTSPlaylistWaitsForFirstSegment(t *testing.T) {
	m := newTestManager(t, Config{})
	sy := publish(t, m)
	sy.frames(10)
	ch := fetchAsync(m, fileReq(hlsname.TSMedia))
	waitBlocked(t, m, 1)
	sy.frames(61)
	r := await(t, ch, 5*time.Second)
	if r.err != nil || !bytes.Contains(r.resp.Body, []byte("seg0.ts")) {
		t.Fatalf("%v %s", r.err, r.resp.Body)
	}
}

// TestTSWindowTrim: TS segments are dropped with their fMP4 twins.
func TestTSWindowTrim(t *testing.T) {
	m := newTestManager(t, Config{WindowSegments: 6, RetainSegments: 1})
	sy := publish(t, m)
	sy.frames(12*60 + 1)
	s, _ := m.Stream("test")
	s.mu.Lock()
	first, n, fn := s.ts.segs[0].msn, len(s.ts.segs), len(s.segs)
	s.mu.Unlock()
	if n != fn || first != 12-7 {
		t.Fatalf("%d TS segments from %d; %d fMP4", n, first, fn)
	}
	if _, err := fetchNow(m, fileReq("seg0.ts")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("seg0.ts: %v", err)
	}
}

// TestTSFFprobe shows the segments to ffprobe, which finds H.264, AAC and a
// timed_id3 stream. ffprobe drops the first bytes of ID3 PES payloads, so
// it is not asked for the tag.
func TestTSFFprobe(t *testing.T) {
	if testing.Short() {
		t.Skip("runs ffprobe")
	}
	if _, err := exec.LookPath("ffprobe"); err != nil {
		t.Skip("no ffprobe")
	}
	m := newTestManager(t, Config{})
	sy := publish(t, m)
	sy.next()
	s, _ := m.Stream("test")
	if _, err := s.AddEvent(Event{ID: "c1", Time: time.Second, ID3: testID3(`{"id":"c1"}`), EmsgID: 2}); err != nil {
		t.Fatal(err)
	}
	sy.frames(4 * 30)
	var all []byte
	for _, f := range []string{"seg0.ts", "seg1.ts"} {
		all = append(all, mustFetch(t, m, fileReq(f)).Body...)
	}
	path := filepath.Join(t.TempDir(), "a.ts")
	if err := os.WriteFile(path, all, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "stream=codec_name,codec_type:packet=stream_index,pts",
		"-of", "compact", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe: %v\n%s", err, out)
	}
	text := string(out)
	for _, want := range []string{"codec_name=h264", "codec_name=aac", "codec_name=timed_id3",
		fmt.Sprintf("packet|stream_index=2|pts=%d", clock90k(time.Second+tsTimeOffset))} {
		if !strings.Contains(text, want) {
			t.Fatalf("ffprobe shows no %s:\n%s", want, text)
		}
	}
	// The synthetic frames do not decode; the container must be clean.
	for _, bad := range []string{"ontinuity", "mismatch", "orrupt", "Invalid", "invalid"} {
		if strings.Contains(text, bad) {
			t.Fatalf("ffprobe reports %q:\n%s", bad, text)
		}
	}
}

// TestTSH265: an H.265 track becomes stream_type 0x24, its keyframes led
// by an AUD and the VPS, SPS and PPS that RTMP-style publishers send out of
// band only.
func TestTSH265(t *testing.T) {
	m := newTestManager(t, Config{})
	// The SPS is mediacommon's test SPS; the packager parses it.
	vps, pps := []byte{32 << 1, 1, 0x0c}, []byte{34 << 1, 1, 0xc1}
	sps := []byte{
		0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00, 0x03,
		0x00, 0x78, 0xa0, 0x03, 0xc0, 0x80, 0x10, 0xe5, 0x96, 0x66, 0x69, 0x24, 0xca, 0xe0, 0x10, 0x00,
		0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x01, 0xe0, 0x80,
	}
	video := &ingest.Track{ID: 1, Codec: &codecs.H265{VPS: vps, SPS: sps, PPS: pps}}
	pub, err := m.Publish(ingest.PublishInfo{Name: "test", Tracks: []*ingest.Track{video}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2*60 + 1 {
		typ := byte(1) // TRAIL_R
		if i%60 == 0 {
			typ = 19 // IDR_W_RADL
		}
		at := time.Duration(i) * time.Second / 30
		if err := pub.WriteUnit(&ingest.Unit{Track: video, PTS: at, DTS: at, AU: [][]byte{{typ << 1, 1, byte(i)}}}); err != nil {
			t.Fatal(err)
		}
	}
	d := demuxTS(t, mustFetch(t, m, fileReq("seg0.ts")).Body)
	if es := d.pmt.ElementaryStreams; len(es) != 2 || es[0].StreamType != astits.StreamTypeH265Video || es[1].StreamType != astits.StreamTypeMetadata {
		t.Fatalf("PMT %+v", d.pmt)
	}
	if len(d.pes) != 60 {
		t.Fatalf("%d PES packets, want 60", len(d.pes))
	}
	var au h264.AnnexB // the same start-code syntax
	if err := au.Unmarshal(d.pes[0].data); err != nil {
		t.Fatal(err)
	}
	var types []byte
	for _, n := range au {
		types = append(types, n[0]>>1&0x3f)
	}
	if fmt.Sprint(types) != "[35 32 33 34 19]" {
		t.Fatalf("keyframe NAL unit types %v", types)
	}
}
