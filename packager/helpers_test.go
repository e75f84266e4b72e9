package packager

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"
	"github.com/bluenviron/gohlslib/v2/pkg/playlist"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"

	"github.com/shopcast/shopcast/ingest"
	"github.com/shopcast/shopcast/internal/hlsname"
)

// testSPS is a 640x360 High profile SPS from x264.
var testSPS = []byte{
	0x67, 0x64, 0x00, 0x1e, 0xac, 0xd9, 0x40, 0xa0, 0x2f, 0xf9, 0x70, 0x11,
	0x00, 0x00, 0x03, 0x00, 0x01, 0x00, 0x00, 0x03, 0x00, 0x3c, 0x0f, 0x16,
	0x2d, 0x96,
}

var testPPS = []byte{0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0}

// synth feeds a publication synthetic H.264 + AAC units, as a publisher
// sending fps frames per second with a keyframe every gop frames would.
type synth struct {
	t          testing.TB
	pub        ingest.Publication
	video      *ingest.Track
	audio      *ingest.Track
	fps        int
	gop        int
	frame      int
	audioNext  time.Duration
	start      time.Duration
	msRounding bool

	// bframes sends one B-frame after each P-frame (closed GOPs): units
	// arrive in decode order and PTS != DTS.
	bframes bool
	// audioLead sends audio this far ahead of the video, as publishers
	// that interleave loosely do.
	audioLead time.Duration
	// jump is added to every timestamp sent from now on (a clock reset).
	jump time.Duration
	// noAudio leaves the audio track silent.
	noAudio bool
	// sent records the video units sent, in decode order.
	sent []sentFrame
	// payload is the size of each video access unit's slice NAL unit.
	payload int
	// before, when set, is called with each video unit before it is sent
	// (a variant publisher sending its frames first, as a multitrack
	// connection may); after, once it was sent.
	before, after func(u *ingest.Unit)
}

// sentFrame is a video unit as the publisher sent it.
type sentFrame struct {
	pts, dts time.Duration
	key      bool
}

func newSynth(t testing.TB) (*synth, ingest.PublishInfo) {
	s := &synth{
		t:     t,
		video: &ingest.Track{ID: 1, Codec: &codecs.H264{SPS: testSPS, PPS: testPPS}},
		audio: &ingest.Track{ID: 2, Codec: &codecs.MPEG4Audio{Config: mpeg4audio.AudioSpecificConfig{
			Type: mpeg4audio.ObjectTypeAACLC, SampleRate: 48000, ChannelConfig: 2,
		}}},
		fps: 30, gop: 60, msRounding: true,
	}
	return s, ingest.PublishInfo{Name: "test", Proto: "rtmp", Remote: "127.0.0.1:1", Tracks: []*ingest.Track{s.video, s.audio}}
}

func (s *synth) round(d time.Duration) time.Duration {
	if s.msRounding {
		return d.Truncate(time.Millisecond)
	}
	return d
}

// frameTime is the exact time of video frame n (decode or display index).
func (s *synth) frameTime(n int) time.Duration {
	return s.start + time.Duration(n)*time.Second/time.Duration(s.fps)
}

// display returns the display index of the frame with decode index i.
func (s *synth) display(i int) int {
	if !s.bframes {
		return i
	}
	// Closed GOPs of I P B P B ...: a P-frame is shown after the B-frame
	// that follows it in decode order; in a GOP of even length the last
	// frame is a P-frame with no B-frame after it.
	j := i % s.gop
	g := i - j
	switch {
	case j == 0, j == s.gop-1 && s.gop%2 == 0:
		return i
	case j%2 == 1:
		return g + j + 1
	default:
		return g + j - 1
	}
}

// next sends one video frame and the audio frames up to its time.
func (s *synth) next() {
	s.t.Helper()
	if err := s.tryNext(); err != nil {
		s.t.Fatal(err)
	}
}

// tryNext is next that returns the publication's error.
func (s *synth) tryNext() error {
	dts := s.frameTime(s.frame)
	pts := dts
	if s.bframes {
		// One frame of reorder delay keeps PTS >= DTS.
		pts = s.frameTime(s.display(s.frame) + 1)
	}
	for !s.noAudio && s.start+s.audioNext <= dts+s.audioLead {
		at := s.round(s.start + s.audioNext + s.jump)
		if err := s.pub.WriteUnit(&ingest.Unit{Track: s.audio, PTS: at, DTS: at, Frame: make([]byte, 200)}); err != nil {
			return err
		}
		s.audioNext += 1024 * time.Second / 48000
	}
	size := max(s.payload, 4)
	var au [][]byte
	key := s.frame%s.gop == 0
	if key {
		nalu := make([]byte, size)
		nalu[0], nalu[1] = 0x65, byte(s.frame)
		au = [][]byte{testSPS, testPPS, nalu}
	} else {
		nalu := make([]byte, size)
		nalu[0], nalu[1], nalu[2] = 0x41, byte(s.frame>>8), byte(s.frame)
		au = [][]byte{nalu}
	}
	u := &ingest.Unit{Track: s.video, PTS: s.round(pts + s.jump), DTS: s.round(dts + s.jump), AU: au}
	s.sent = append(s.sent, sentFrame{pts: u.PTS, dts: u.DTS, key: key})
	s.frame++
	if s.before != nil {
		s.before(u)
	}
	if err := s.pub.WriteUnit(u); err != nil {
		return err
	}
	if s.after != nil {
		s.after(u)
	}
	return nil
}

func (s *synth) frames(n int) {
	s.t.Helper()
	for range n {
		s.next()
	}
}

// newTestManager returns a Manager closed when the test ends.
func newTestManager(t testing.TB, cfg Config) *Manager {
	m := New(cfg, nil)
	t.Cleanup(m.Close)
	return m
}

// publish starts a synthetic publisher on m, configured by opts.
func publish(t testing.TB, m *Manager, opts ...func(*synth)) *synth {
	t.Helper()
	sy, info := newSynth(t)
	for _, o := range opts {
		o(sy)
	}
	pub, err := m.Publish(info)
	if err != nil {
		t.Fatal(err)
	}
	sy.pub = pub
	return sy
}

func mediaReq(msn, part int64, skip Skip) Request {
	return Request{Stream: "test", File: "stream.m3u8", MSN: msn, Part: part, Skip: skip}
}

func fileReq(name string) Request {
	return Request{Stream: "test", File: name, MSN: -1, Part: -1}
}

// fetchNow fetches without waiting: a request that would block fails with
// context.Canceled.
func fetchNow(m *Manager, req Request) (*Response, error) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return m.Fetch(ctx, req)
}

// mustFetch fetches a file that must exist now.
func mustFetch(t testing.TB, m *Manager, req Request) *Response {
	t.Helper()
	r, err := fetchNow(m, req)
	if err != nil {
		t.Fatalf("fetch %s (msn %d part %d): %v", req.File, req.MSN, req.Part, err)
	}
	return r
}

// fetchResult is the outcome of a Fetch run in the background.
type fetchResult struct {
	resp *Response
	err  error
}

// fetchAsync runs Fetch in a goroutine.
func fetchAsync(m *Manager, req Request) <-chan fetchResult {
	ch := make(chan fetchResult, 1)
	go func() {
		r, err := m.Fetch(context.Background(), req)
		ch <- fetchResult{r, err}
	}()
	return ch
}

// await returns the background fetch's fetchResult, failing the test if it takes
// longer than d.
func await(t testing.TB, ch <-chan fetchResult, d time.Duration) fetchResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(d):
		t.Fatalf("request did not return within %v", d)
		return fetchResult{}
	}
}

// eventually waits until cond holds, failing the test after d.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitBlocked waits until n requests are blocked in m.
func waitBlocked(t testing.TB, m *Manager, n int64) {
	t.Helper()
	eventually(t, 10*time.Second, fmt.Sprintf("%d blocked requests", n), func() bool { return m.Blocked() == n })
}

// parseMedia parses a media playlist with gohlslib and checks the rules
// gohlslib does not: see checkMediaText.
func parseMedia(t testing.TB, body []byte, cfg Config) *playlist.Media {
	t.Helper()
	pl, err := playlist.Unmarshal(body)
	if err != nil {
		t.Fatalf("gohlslib cannot parse the playlist: %v\n%s", err, body)
	}
	mp, ok := pl.(*playlist.Media)
	if !ok {
		t.Fatalf("not a media playlist: %T", pl)
	}
	checkMedia(t, mp, body, cfg)
	return mp
}

var partDurRe = regexp.MustCompile(`#EXT-X-PART:DURATION=([0-9.]+)`)

// checkMedia asserts the LL-HLS rules every media playlist must follow.
func checkMedia(t testing.TB, mp *playlist.Media, body []byte, cfg Config) {
	t.Helper()
	fail := func(format string, a ...any) {
		t.Helper()
		t.Fatalf(format+"\n%s", append(a, body)...)
	}
	text := string(body)
	if mp.Version < 9 {
		fail("EXT-X-VERSION %d < 9", mp.Version)
	}
	sc := mp.ServerControl
	if sc == nil || !sc.CanBlockReload {
		fail("no CAN-BLOCK-RELOAD=YES")
	}
	if sc.PartHoldBack == nil || !near(*sc.PartHoldBack, 3*cfg.PartTarget, time.Millisecond) {
		fail("PART-HOLD-BACK %v, want 3 x %v", sc.PartHoldBack, cfg.PartTarget)
	}
	td := time.Duration(mp.TargetDuration) * time.Second
	if sc.CanSkipUntil == nil || *sc.CanSkipUntil != 6*td {
		fail("CAN-SKIP-UNTIL %v, want 6 x %v", sc.CanSkipUntil, td)
	}
	if mp.PartInf == nil || !near(mp.PartInf.PartTarget, cfg.PartTarget, time.Millisecond) {
		fail("PART-TARGET %v, want %v", mp.PartInf, cfg.PartTarget)
	}
	// A delta update leaves out the EXT-X-MAP of the skipped segments, as
	// in RFC 8216bis's example; a full playlist has one.
	if mp.Skip == nil && (mp.Map == nil || !strings.HasPrefix(mp.Map.URI, "init") && !strings.Contains(mp.Map.URI, ".init")) {
		fail("no EXT-X-MAP")
	}
	// RFC 8216bis 4.4.3.1: each EXTINF rounded is <= EXT-X-TARGETDURATION.
	for _, seg := range mp.Segments {
		if r := math.Round(seg.Duration.Seconds()); r > float64(mp.TargetDuration) {
			fail("EXTINF %v of %s rounds above EXT-X-TARGETDURATION %d", seg.Duration, seg.URI, mp.TargetDuration)
		}
		if seg.DateTime == nil {
			fail("%s has no EXT-X-PROGRAM-DATE-TIME", seg.URI)
		}
	}
	// RFC 8216bis 4.4.4.9: a part is at most PART-TARGET long.
	for _, m := range partDurRe.FindAllStringSubmatch(text, -1) {
		d, _ := strconv.ParseFloat(m[1], 64)
		if d > cfg.PartTarget.Seconds()+1e-9 {
			fail("part of %gs exceeds PART-TARGET %v", d, cfg.PartTarget)
		}
	}
	if !mp.Endlist {
		if mp.PreloadHint == nil {
			// No publisher during the grace period: nothing to hint.
			if strings.Contains(text, "PRELOAD-HINT") {
				fail("unparsed preload hint")
			}
		} else if !strings.Contains(text, "#EXT-X-PRELOAD-HINT:TYPE=PART,") {
			fail("preload hint is not TYPE=PART")
		}
	}
	// Part tags only for the last three target durations (RFC 8216bis
	// 4.4.4.9), counted from the end of the playlist, and only for the last
	// three segments, the open one included (hls-parser's strict mode); a
	// complete segment within both lists its parts. Both checks go through
	// the playlist's own durations.
	end := time.Duration(0)
	for _, seg := range mp.Segments {
		end += seg.Duration
	}
	for _, p := range mp.Parts {
		end += p.Duration
	}
	entries := len(mp.Segments)
	if len(mp.Parts) > 0 {
		entries++
	}
	// The packager counts in media time, which after a reconnection may
	// have a gap the size of the audio that ran ahead of the video.
	gap := time.Millisecond
	if strings.Contains(text, "#EXT-X-DISCONTINUITY\n") {
		gap = 500 * time.Millisecond
	}
	minPart := cfg.PartTarget * minPartPercent / 100
	at := time.Duration(0)
	for i, seg := range mp.Segments {
		start := at
		at += seg.Duration
		last3 := i >= entries-3
		if len(seg.Parts) > 0 && (!last3 || end-start > 3*td+time.Millisecond) {
			fail("%s starts %v before the end, %d segments from it, and still lists parts", seg.URI, end-start, entries-i)
		}
		if len(seg.Parts) == 0 && last3 && end-start < 3*td-gap && !mp.Endlist {
			fail("%s starts %v before the end, %d segments from it, and lists no parts", seg.URI, end-start, entries-i)
		}
		if len(seg.Parts) > 0 {
			sum := time.Duration(0)
			for _, p := range seg.Parts {
				sum += p.Duration
			}
			if !near(sum, seg.Duration, 2*time.Millisecond) {
				fail("%s lasts %v, its parts %v", seg.URI, seg.Duration, sum)
			}
			if !seg.Parts[0].Independent && !seg.Gap {
				fail("first part of %s is not INDEPENDENT", seg.URI)
			}
		}
		// Apple's HLS authoring spec: every part but the last of its
		// segment lasts at least 85% of PART-TARGET.
		for j, p := range seg.Parts[:max(len(seg.Parts)-1, 0)] {
			if p.Duration < minPart {
				fail("part %d of %s lasts %v, under 85%% of PART-TARGET, and is not its last", j, seg.URI, p.Duration)
			}
		}
	}
	// The open segment's parts: none of them is known to be the last, so a
	// short one would break the same rule (hls-parser counts the preload
	// hint as the part after them).
	for j, p := range mp.Parts {
		if p.Duration < minPart {
			fail("part %d of the open segment lasts %v, under 85%% of PART-TARGET, with no EXTINF to say it is the last", j, p.Duration)
		}
	}
}

func near(a, b, tol time.Duration) bool {
	d := a - b
	return d <= tol && d >= -tol
}

// partNumber returns N of "partN.m4s".
func partNumber(t testing.TB, uri string) int64 {
	t.Helper()
	n, err := hlsname.Parse(uri)
	if err != nil || n.Kind != hlsname.KindPart || n.String() != uri {
		t.Fatalf("bad part URI %q", uri)
	}
	return n.N
}

// segNumber returns N of "segN.m4s".
func segNumber(t testing.TB, uri string) int64 {
	t.Helper()
	n, err := hlsname.Parse(uri)
	if err != nil || n.Kind != hlsname.KindSegment || n.String() != uri {
		t.Fatalf("bad segment URI %q", uri)
	}
	return n.N
}

// initTrack is a track of an init segment, as mp4ff reads it.
type initTrack struct {
	handler   string
	timescale uint32
}

func decodeInit(t testing.TB, body []byte) map[uint32]initTrack {
	t.Helper()
	f, err := mp4.DecodeFile(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("mp4ff cannot decode the init segment: %v", err)
	}
	if f.Init == nil || f.Init.Moov == nil || f.Init.Moov.Mvex == nil {
		t.Fatal("init segment without moov/mvex")
	}
	tracks := map[uint32]initTrack{}
	for _, trak := range f.Init.Moov.Traks {
		tracks[trak.Tkhd.TrackID] = initTrack{handler: trak.Mdia.Hdlr.HandlerType, timescale: trak.Mdia.Mdhd.Timescale}
	}
	return tracks
}

// mp4Run is one track's run in one mp4Frag.
type mp4Run struct {
	tfdt    uint64
	samples []mp4.Sample
}

func (tr mp4Run) duration() uint64 {
	var d uint64
	for _, s := range tr.samples {
		d += uint64(s.Dur)
	}
	return d
}

// mp4Frag is one moof+mdat, by track ID.
type mp4Frag struct {
	seq    uint32
	tracks map[uint32]mp4Run
}

// decodeFragments decodes a part or a segment with mp4ff.
func decodeFragments(t testing.TB, body []byte) []mp4Frag {
	t.Helper()
	f, err := mp4.DecodeFile(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("mp4ff cannot decode the media: %v", err)
	}
	var out []mp4Frag
	for _, seg := range f.Segments {
		for _, fr := range seg.Fragments {
			if fr.Moof == nil || fr.Mdat == nil {
				t.Fatal("mp4Frag without moof or mdat")
			}
			fi := mp4Frag{seq: fr.Moof.Mfhd.SequenceNumber, tracks: map[uint32]mp4Run{}}
			total := 0
			for _, tf := range fr.Moof.Trafs {
				if tf.Tfdt == nil || tf.Trun == nil {
					t.Fatal("mp4Run without tfdt or trun")
				}
				var smps []mp4.Sample
				for _, tr := range tf.Truns {
					tr.AddSampleDefaultValues(tf.Tfhd, nil)
					smps = append(smps, tr.GetSamples()...)
				}
				for _, s := range smps {
					total += int(s.Size)
				}
				fi.tracks[tf.Tfhd.TrackID] = mp4Run{tfdt: tf.Tfdt.BaseMediaDecodeTime(), samples: smps}
			}
			if total != len(fr.Mdat.Data) {
				t.Fatalf("trun sizes add up to %d bytes, mdat holds %d", total, len(fr.Mdat.Data))
			}
			out = append(out, fi)
		}
	}
	if len(out) == 0 {
		t.Fatal("no mp4Frag")
	}
	return out
}

func isSync(s mp4.Sample) bool { return !mp4.DecodeSampleFlags(s.Flags).SampleIsNonSync }

// tfdtChecker checks that each track's fragments follow one another.
type tfdtChecker struct {
	next map[uint32]uint64
	// gaps allows a track's decode time to jump forward (never back), as
	// after a discontinuity.
	gaps bool
}

func (tl *tfdtChecker) add(t testing.TB, what string, frs []mp4Frag) {
	t.Helper()
	if tl.next == nil {
		tl.next = map[uint32]uint64{}
	}
	for _, fr := range frs {
		for id, tr := range fr.tracks {
			if next, ok := tl.next[id]; ok {
				if tl.gaps && tr.tfdt < next || !tl.gaps && tr.tfdt != next {
					t.Fatalf("%s track %d: tfdt %d, previous mp4Frag ends at %d", what, id, tr.tfdt, next)
				}
			}
			tl.next[id] = tr.tfdt + tr.duration()
		}
	}
}

// recorder follows a stream as a viewer would: after each frame it reads
// the playlist and every new part, keeping what it saw.
type recorder struct {
	t     testing.TB
	m     *Manager
	cfg   Config
	parts map[int64][]byte // part number -> bytes
	next  int64
	// partSeg maps a part number to its segment and position there.
	partSeg map[int64]partPos
	// segParts lists the parts of complete segments seen with their tags.
	segParts map[int64][]*playlist.MediaPart
	segs     map[int64]*playlist.MediaSegment
	last     []byte          // the latest playlist
	media    *playlist.Media // last, parsed
	lists    int             // playlist versions seen
	msnSeen  int64
	td       int // EXT-X-TARGETDURATION, which never changes
}

type partPos struct {
	msn   int64
	index int
	tag   *playlist.MediaPart
}

func newRecorder(t testing.TB, m *Manager) *recorder {
	return &recorder{t: t, m: m, cfg: m.Config(), parts: map[int64][]byte{}, partSeg: map[int64]partPos{},
		segParts: map[int64][]*playlist.MediaPart{}, segs: map[int64]*playlist.MediaSegment{}, msnSeen: -1}
}

// poll reads what is new. It returns the number of parts read.
func (r *recorder) poll() int {
	r.t.Helper()
	n := 0
	for {
		resp, err := fetchNow(r.m, fileReq(fmt.Sprintf("part%d.m4s", r.next)))
		if err != nil {
			break
		}
		r.parts[r.next] = resp.Body
		r.next++
		n++
	}
	resp, err := fetchNow(r.m, mediaReq(-1, -1, SkipNone))
	if err != nil {
		return n
	}
	if bytes.Equal(resp.Body, r.last) {
		return n
	}
	r.last = resp.Body
	r.lists++
	mp := parseMedia(r.t, resp.Body, r.cfg)
	r.media = mp
	if int64(mp.MediaSequence) < r.msnSeen {
		r.t.Fatalf("EXT-X-MEDIA-SEQUENCE went back from %d to %d", r.msnSeen, mp.MediaSequence)
	}
	r.msnSeen = int64(mp.MediaSequence)
	if r.td != 0 && mp.TargetDuration != r.td {
		r.t.Fatalf("EXT-X-TARGETDURATION changed from %d to %d", r.td, mp.TargetDuration)
	}
	r.td = mp.TargetDuration
	for i, seg := range mp.Segments {
		msn := int64(mp.MediaSequence + i)
		if got := segNumber(r.t, seg.URI); got != msn {
			r.t.Fatalf("segment %s at media sequence number %d", seg.URI, msn)
		}
		if old := r.segs[msn]; old != nil && (old.Duration != seg.Duration || !old.DateTime.Equal(*seg.DateTime)) {
			r.t.Fatalf("segment %d changed: %v %v -> %v %v", msn, old.Duration, old.DateTime, seg.Duration, seg.DateTime)
		}
		r.segs[msn] = seg
		if len(seg.Parts) > 0 {
			r.segParts[msn] = seg.Parts
		}
		r.addParts(msn, seg.Parts)
	}
	r.addParts(int64(mp.MediaSequence+len(mp.Segments)), mp.Parts)
	return n
}

func (r *recorder) addParts(msn int64, parts []*playlist.MediaPart) {
	for i, p := range parts {
		n := partNumber(r.t, p.URI)
		if old, ok := r.partSeg[n]; ok && (old.msn != msn || old.index != i || old.tag.Duration != p.Duration || old.tag.Independent != p.Independent) {
			r.t.Fatalf("part %d moved or changed", n)
		}
		r.partSeg[n] = partPos{msn: msn, index: i, tag: p}
	}
}

// write sends n frames, polling after each.
func (r *recorder) write(sy *synth, n int) {
	r.t.Helper()
	for range n {
		sy.next()
		r.poll()
	}
}

// isErr reports whether err is target, for table tests.
func isErr(err, target error) bool {
	if target == nil {
		return err == nil
	}
	return errors.Is(err, target)
}

// videoSample is a video sample as mp4ff reads it from the parts, on the
// track's decode timeline.
type videoSample struct {
	dts  uint64
	cto  int32
	dur  uint32
	sync bool
}

func (v videoSample) pts() int64 { return int64(v.dts) + int64(v.cto) }

// samples returns the samples of track id in parts 0 to rec.next-1, in
// order, checking that each part's tfdt follows the previous part's samples.
func (r *recorder) samples(id uint32, gaps bool) []videoSample {
	r.t.Helper()
	var out []videoSample
	tl := tfdtChecker{gaps: gaps}
	for n := range r.next {
		frs := decodeFragments(r.t, r.parts[n])
		tl.add(r.t, fmt.Sprintf("part %d", n), frs)
		for _, fr := range frs {
			run, ok := fr.tracks[id]
			if !ok {
				continue
			}
			dts := run.tfdt
			for _, s := range run.samples {
				out = append(out, videoSample{dts: dts, cto: s.CompositionTimeOffset, dur: s.Dur, sync: isSync(s)})
				dts += uint64(s.Dur)
			}
		}
	}
	return out
}

// ticks90k converts a duration to 90 kHz ticks, rounding to the nearest.
func ticks90k(d time.Duration) int64 {
	return (int64(d)*9 + 50000) / 100000
}
