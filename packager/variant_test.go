package packager

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/playlist"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"

	"github.com/shopcast/shopcast/ingest"
	"github.com/shopcast/shopcast/internal/hlsname"
)

// variantFeed publishes a variant of the synth's stream: for every source
// video unit, one of its own with the same timestamps, delay frames later
// (an encoder's delay), or before the source's (a multitrack connection
// interleaving its tracks so).
type variantFeed struct {
	t       testing.TB
	name    string
	track   *ingest.Track
	pub     ingest.Publication
	delay   int
	queue   []*ingest.Unit
	errs    []error
	written int
}

func newVariantFeed(t testing.TB, m *Manager, sy *synth, name string, delay int, first bool) *variantFeed {
	t.Helper()
	f := &variantFeed{t: t, name: name, delay: delay, track: &ingest.Track{ID: 1, Codec: &codecs.H264{SPS: testSPS, PPS: testPPS}}}
	pub, err := m.Publish(ingest.PublishInfo{Name: "test", Proto: "test", Variant: name, Tracks: []*ingest.Track{f.track}})
	if err != nil {
		t.Fatalf("publish variant %s: %v", name, err)
	}
	f.pub = pub
	hook := func(u *ingest.Unit) { f.send(u) }
	if first {
		sy.before = chain(sy.before, hook)
	} else {
		sy.after = chain(sy.after, hook)
	}
	return f
}

func chain(a, b func(*ingest.Unit)) func(*ingest.Unit) {
	if a == nil {
		return b
	}
	return func(u *ingest.Unit) { a(u); b(u) }
}

// send queues a copy of source unit u and writes what is delay frames old.
func (f *variantFeed) send(u *ingest.Unit) {
	au := make([][]byte, len(u.AU))
	for i, n := range u.AU {
		au[i] = append([]byte{}, n...)
		if n[0]&0x1f == 5 || n[0]&0x1f == 1 {
			au[i] = append(au[i], 0xaa) // another picture than the source's
		}
	}
	f.queue = append(f.queue, &ingest.Unit{Track: f.track, PTS: u.PTS, DTS: u.DTS, AU: au})
	for len(f.queue) > f.delay {
		if err := f.pub.WriteUnit(f.queue[0]); err != nil {
			f.errs = append(f.errs, err)
		}
		f.written++
		f.queue = f.queue[1:]
	}
}

func variantCfg() Config {
	return Config{TargetDuration: 2 * time.Second, PartTarget: 333 * time.Millisecond}
}

// TestVariantFollower: a variant fed with the source's timestamps, at once,
// ahead of the source or an encoder's delay behind it, has part N and
// segment N at the media time of the source's, with the source's audio
// samples and emsg boxes in them, and a playlist that gohlslib reads.
func TestVariantFollower(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		delay   int
		first   bool
		aligned bool // on the aligned timeline (aligned.go)
	}{
		{"after", 0, false, false},
		{"before", 0, true, false},
		{"delayed", 12, false, false},
		{"aligned", 12, false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := variantCfg()
			if tt.aligned {
				cfg.AlignedTimeline, cfg.PartTarget = true, 500*time.Millisecond
				cfg.TimelineAnchor = func(string, time.Time) int64 { return 14_600_000 }
			}
			m := newTestManager(t, cfg)
			sy := publish(t, m)
			sy.frames(1)
			f := newVariantFeed(t, m, sy, "480p", tt.delay, tt.first)
			sy.frames(100)
			if _, err := m.AddEvent("test", Event{ID: "cue1", Now: true, ID3: []byte("ID3 cue one"), EmsgID: 7,
				DateRange: &DateRange{Class: "com.shopcast.product", Attrs: []DateRangeAttr{{Name: "X-SKU", String: "sku-1"}}}}); err != nil {
				t.Fatal(err)
			}
			sy.frames(200)
			if len(f.errs) > 0 {
				t.Fatalf("variant WriteUnit: %v", f.errs[0])
			}
			vm := checkVariantAligned(t, m, "480p", 1)
			if tt.aligned && vm.MediaSequence < 14_600_000 {
				t.Errorf("variant from MSN %d on the aligned timeline anchored at 14600000", vm.MediaSequence)
			}
		})
	}
}

// checkVariantAligned compares every part and segment variant v lists with
// the source's of the same number, and returns the variant's playlist.
func checkVariantAligned(t *testing.T, m *Manager, v string, wantEmsgs int) *playlist.Media {
	t.Helper()
	cfg := m.Config()
	src := parseMedia(t, mustFetch(t, m, mediaReq(-1, -1, SkipNone)).Body, cfg)
	body := mustFetch(t, m, fileReq(hlsname.VariantMedia(v))).Body
	vm := parseMedia(t, body, cfg)
	if !strings.HasPrefix(vm.Map.URI, v+".init") {
		t.Fatalf("variant map %q", vm.Map.URI)
	}
	if vm.MediaSequence < src.MediaSequence || len(vm.Segments) < 2 {
		t.Fatalf("variant playlist from MSN %d with %d segments; source from %d\n%s", vm.MediaSequence, len(vm.Segments), src.MediaSequence, body)
	}
	init := decodeInit(t, mustFetch(t, m, fileReq(vm.Map.URI)).Body)
	if init[1].handler != "vide" || init[2].handler != "soun" || len(init) != 2 {
		t.Fatalf("variant init tracks %+v, want video 1 and audio 2", init)
	}
	var uris [][2]string // variant, source
	for i, seg := range vm.Segments {
		msn := int64(vm.MediaSequence + i)
		if seg.Gap {
			continue
		}
		uris = append(uris, [2]string{seg.URI, hlsname.Segment(msn)})
		for _, p := range seg.Parts {
			n, _ := hlsname.Parse(p.URI)
			uris = append(uris, [2]string{p.URI, hlsname.Part(n.N)})
		}
	}
	for _, p := range vm.Parts {
		n, _ := hlsname.Parse(p.URI)
		uris = append(uris, [2]string{p.URI, hlsname.Part(n.N)})
	}
	emsgs := 0
	frame := uint64(90000 / 30)
	for _, u := range uris {
		vb := mustFetch(t, m, fileReq(u[0])).Body
		sb := mustFetch(t, m, fileReq(u[1])).Body
		vf, sf := decodeFragments(t, vb), decodeFragments(t, sb)
		if len(vf) != len(sf) {
			t.Fatalf("%s has %d fragments, %s %d", u[0], len(vf), u[1], len(sf))
		}
		for i := range vf {
			if vf[i].seq != sf[i].seq {
				t.Errorf("%s fragment %d: sequence %d, source %d", u[0], i, vf[i].seq, sf[i].seq)
			}
			vv, sv := vf[i].tracks[1], sf[i].tracks[1]
			if d := int64(vv.tfdt) - int64(sv.tfdt); d > int64(frame) || d < -int64(frame) || len(vv.samples) == 0 {
				t.Errorf("%s fragment %d: video tfdt %d, source %d (%d samples)", u[0], i, vv.tfdt, sv.tfdt, len(vv.samples))
			}
			va, sa := vf[i].tracks[2], sf[i].tracks[2]
			if va.tfdt != sa.tfdt || len(va.samples) != len(sa.samples) || va.duration() != sa.duration() {
				t.Errorf("%s fragment %d: audio tfdt %d x %d, source %d x %d", u[0], i, va.tfdt, len(va.samples), sa.tfdt, len(sa.samples))
			}
		}
		// The emsg boxes are the source's, byte for byte.
		vi, si := bytes.Index(vb, []byte("moof"))-4, bytes.Index(sb, []byte("moof"))-4
		if !bytes.Equal(vb[:vi], sb[:si]) {
			t.Errorf("%s: the boxes before the moof differ from %s's", u[0], u[1])
		}
		emsgs += bytes.Count(vb[:vi], []byte("emsg"))
	}
	if emsgs < wantEmsgs {
		t.Errorf("%d emsg boxes in the variant's files, want %d at least", emsgs, wantEmsgs)
	}
	// The same EXT-X-DATERANGE lines in both playlists.
	dr := func(b []byte) (out []string) {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "#EXT-X-DATERANGE:") {
				out = append(out, l)
			}
		}
		return out
	}
	srcBody := mustFetch(t, m, mediaReq(-1, -1, SkipNone)).Body
	if a, b := dr(srcBody), dr(body); strings.Join(a, "\n") != strings.Join(b, "\n") || len(a) < min(wantEmsgs, 1) {
		t.Errorf("date ranges: source %q, variant %q", a, b)
	}
	return vm
}

// TestVariantMultivariant: the multivariant playlist lists the source
// first and the variant, each media playlist reports the other's live edge.
func TestVariantMultivariant(t *testing.T) {
	t.Parallel()
	m := newTestManager(t, variantCfg())
	sy := publish(t, m)
	sy.frames(1)
	newVariantFeed(t, m, sy, "360p", 0, false)
	sy.frames(150)
	body := mustFetch(t, m, fileReq(hlsname.Multivariant)).Body
	pl, err := playlist.Unmarshal(body)
	if err != nil {
		t.Fatalf("gohlslib: %v\n%s", err, body)
	}
	mv, ok := pl.(*playlist.Multivariant)
	if !ok || len(mv.Variants) != 2 || mv.Variants[0].URI != hlsname.Media || mv.Variants[1].URI != "360p.stream.m3u8" || !mv.IndependentSegments {
		t.Fatalf("multivariant playlist:\n%s", body)
	}
	for _, v := range mv.Variants {
		if v.Bandwidth <= 0 || v.AverageBandwidth == nil || *v.AverageBandwidth <= 0 || v.FrameRate == nil || len(v.Codecs) != 2 || v.Resolution == "" {
			t.Fatalf("variant %s lacks attributes:\n%s", v.URI, body)
		}
	}
	srcMSN, srcPart, _ := lastPartOf(m, "")
	vMSN, vPart, _ := lastPartOf(m, "360p")
	for _, tt := range []struct {
		file, other  string
		msn, partIdx int64
	}{
		{hlsname.Media, "360p.stream.m3u8", vMSN, vPart},
		{"360p.stream.m3u8", hlsname.Media, srcMSN, srcPart},
	} {
		body := mustFetch(t, m, fileReq(tt.file)).Body
		mp := parseMedia(t, body, m.Config())
		if len(mp.RenditionReport) != 1 || mp.RenditionReport[0].URI != tt.other ||
			int64(mp.RenditionReport[0].LastMSN) != tt.msn || mp.RenditionReport[0].LastPart == nil || int64(*mp.RenditionReport[0].LastPart) != tt.partIdx {
			t.Fatalf("%s: rendition reports, want %s at %d.%d:\n%s", tt.file, tt.other, tt.msn, tt.partIdx, body)
		}
	}
}

func lastPartOf(m *Manager, v string) (int64, int64, bool) {
	s, _ := m.Stream("test")
	s.mu.RLock()
	defer s.mu.RUnlock()
	msn, idx, ok := s.lastPartOf(s.renditionOf(v))
	return msn, int64(idx), ok
}

// TestVariantLateJoin: a variant that starts mid-segment joins at the next
// segment its keyframe starts; its playlist begins there.
func TestVariantLateJoin(t *testing.T) {
	t.Parallel()
	m := newTestManager(t, variantCfg())
	sy := publish(t, m)
	sy.frames(75) // the second segment started at frame 60
	f := &variantFeed{t: t, name: "480p", track: &ingest.Track{ID: 1, Codec: &codecs.H264{SPS: testSPS, PPS: testPPS}}}
	pub, err := m.Publish(ingest.PublishInfo{Name: "test", Variant: "480p", Tracks: []*ingest.Track{f.track}})
	if err != nil {
		t.Fatal(err)
	}
	f.pub = pub
	sy.after = f.send
	sy.frames(200)
	vm := checkVariantAligned(t, m, "480p", 0)
	s, _ := m.Stream("test")
	s.mu.RLock()
	want := s.segs[2].msn // starts at frame 120, the variant's first keyframe
	s.mu.RUnlock()
	if int64(vm.MediaSequence) != want || vm.Segments[0].Gap {
		t.Fatalf("variant starts at MSN %d, want %d", vm.MediaSequence, want)
	}
}

// TestVariantGap: a variant whose publisher leaves lists the source's
// later segments as EXT-X-GAP, leaves the multivariant playlist, and comes
// back at a segment start when a publisher returns.
func TestVariantGap(t *testing.T) {
	t.Parallel()
	m := newTestManager(t, variantCfg())
	sy := publish(t, m)
	sy.frames(1)
	f := newVariantFeed(t, m, sy, "480p", 0, false)
	sy.frames(150)
	f.pub.Close()
	sy.after = nil
	sy.frames(130)
	body := mustFetch(t, m, fileReq(hlsname.Multivariant)).Body
	if strings.Contains(string(body), "480p") {
		t.Fatalf("a variant without publisher is listed:\n%s", body)
	}
	body = mustFetch(t, m, fileReq("480p.stream.m3u8")).Body
	vm := parseMedia(t, body, m.Config())
	gaps := 0
	for _, seg := range vm.Segments {
		if seg.Gap {
			gaps++
		} else if gaps > 0 {
			t.Fatalf("a segment after a gap is not one:\n%s", body)
		}
	}
	if gaps < 2 || vm.PreloadHint != nil {
		t.Fatalf("%d gap segments:\n%s", gaps, body)
	}
	// Back: the variant fills segments again from the next keyframe.
	newVariantFeed(t, m, sy, "480p", 0, false)
	sy.frames(200)
	vm = checkVariantAligned(t, m, "480p", 0)
	if last := vm.Segments[len(vm.Segments)-1]; last.Gap {
		t.Fatalf("variant did not come back")
	}
	if !strings.Contains(string(mustFetch(t, m, fileReq(hlsname.Multivariant)).Body), "480p.stream.m3u8") {
		t.Fatal("variant is not listed again")
	}
}

// TestVariantSourceGone: once the source closes or is replaced, the
// variant's writes fail with ErrSourceGone and it publishes again for the
// new source; the stream keeps its variant's numbering.
func TestVariantSourceGone(t *testing.T) {
	t.Parallel()
	m := newTestManager(t, variantCfg())
	sy := publish(t, m)
	sy.frames(1)
	f := newVariantFeed(t, m, sy, "480p", 0, false)
	sy.frames(130)
	sy2 := publish(t, m) // supersedes the first source
	sy2.start = sy.frameTime(sy.frame)
	err := f.pub.WriteUnit(&ingest.Unit{Track: f.track, PTS: time.Hour, DTS: time.Hour, AU: [][]byte{{0x65, 1}}})
	if !errors.Is(err, ErrSourceGone) {
		t.Fatalf("variant write after the source was replaced: %v, want ErrSourceGone", err)
	}
	f.pub.Close()
	f2 := newVariantFeed(t, m, sy2, "480p", 0, false)
	sy2.frames(200)
	if len(f2.errs) > 0 {
		t.Fatal(f2.errs[0])
	}
	checkVariantAligned(t, m, "480p", 0)
	// A variant's Close never ends the stream; the source's does, after
	// the grace period, and a variant cannot publish without one.
	f2.pub.Close()
	sy2.pub.Close()
	if _, err := m.Publish(ingest.PublishInfo{Name: "test", Variant: "480p", Tracks: []*ingest.Track{f.track}}); !errors.Is(err, ErrNoSource) {
		t.Fatalf("variant without source: %v, want ErrNoSource", err)
	}
}

// TestVariantRefused: bad names, no stream, wrong tracks.
func TestVariantRefused(t *testing.T) {
	t.Parallel()
	m := newTestManager(t, variantCfg())
	video := &ingest.Track{ID: 1, Codec: &codecs.H264{SPS: testSPS, PPS: testPPS}}
	if _, err := m.Publish(ingest.PublishInfo{Name: "test", Variant: "480p", Tracks: []*ingest.Track{video}}); !errors.Is(err, ErrNoSource) {
		t.Fatalf("no stream: %v", err)
	}
	sy := publish(t, m)
	sy.frames(10)
	for _, tt := range []struct {
		info ingest.PublishInfo
		want error
	}{
		{ingest.PublishInfo{Name: "test", Variant: "480P", Tracks: []*ingest.Track{video}}, hlsname.ErrBadVariant},
		{ingest.PublishInfo{Name: "test", Variant: "_a", Tracks: []*ingest.Track{video}}, hlsname.ErrBadVariant},
		{ingest.PublishInfo{Name: "test", Variant: "a.b", Tracks: []*ingest.Track{video}}, hlsname.ErrBadVariant},
		{ingest.PublishInfo{Name: "test", Variant: strings.Repeat("a", 17), Tracks: []*ingest.Track{video}}, hlsname.ErrBadVariant},
		{ingest.PublishInfo{Name: "test", Variant: "480p", Tracks: []*ingest.Track{video, sy.audio}}, ErrUnsupportedCodec},
		{ingest.PublishInfo{Name: "test", Variant: "480p", Tracks: []*ingest.Track{sy.audio}}, ErrUnsupportedCodec},
		{ingest.PublishInfo{Name: "test", Variant: "480p"}, ErrUnsupportedCodec},
		{ingest.PublishInfo{Name: "other", Variant: "480p", Tracks: []*ingest.Track{video}}, ErrNoSource},
	} {
		if _, err := m.Publish(tt.info); !errors.Is(err, tt.want) {
			t.Errorf("Publish(%q, %q, %d tracks) = %v, want %v", tt.info.Name, tt.info.Variant, len(tt.info.Tracks), err, tt.want)
		}
	}
	for _, file := range []string{"720p.stream.m3u8", "720p.part1.m4s", "720p.seg1.m4s", "720p.init1.mp4"} {
		if _, err := fetchNow(m, fileReq(file)); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s of no variant: %v, want ErrNotFound", file, err)
		}
	}
}

// TestVariantBlocking: a blocking reload of a variant's playlist and a
// request for its preload-hinted part wait for the variant's part, not the
// source's, and a delta update skips its old segments.
func TestVariantBlocking(t *testing.T) {
	t.Parallel()
	m := newTestManager(t, variantCfg())
	sy := publish(t, m)
	sy.frames(1)
	newVariantFeed(t, m, sy, "480p", 12, false)
	sy.frames(200)
	msn, idx, _ := lastPartOf(m, "480p")
	vm := parseMedia(t, mustFetch(t, m, fileReq("480p.stream.m3u8")).Body, m.Config())
	hint := vm.PreloadHint.URI
	req := Request{Stream: "test", File: "480p.stream.m3u8", MSN: msn, Part: idx + 1}
	pl := fetchAsync(m, req)
	part := fetchAsync(m, fileReq(hint))
	waitBlocked(t, m, 2)
	sy.frames(12)
	r := await(t, pl, 10*time.Second)
	if r.err != nil {
		t.Fatal(r.err)
	}
	if !bytes.Contains(r.resp.Body, []byte(hint)) || !bytes.Contains(r.resp.Body, []byte("#EXT-X-PART:")) {
		t.Fatalf("blocking reload does not list %s:\n%s", hint, r.resp.Body)
	}
	p := await(t, part, 10*time.Second)
	if p.err != nil || len(p.resp.Body) == 0 {
		t.Fatalf("preload-hinted part: %v", p.err)
	}
	if got := mustFetch(t, m, fileReq(hint)).Body; !bytes.Equal(got, p.resp.Body) {
		t.Fatal("the hinted part changed once published")
	}
	sy.frames(300)
	d := mustFetch(t, m, Request{Stream: "test", File: "480p.stream.m3u8", MSN: -1, Part: -1, Skip: SkipYes}).Body
	dm := parseMedia(t, d, m.Config())
	if dm.Skip == nil || dm.Skip.SkippedSegments == 0 {
		t.Fatalf("no delta update:\n%s", d)
	}
}

// TestVariantStats: a variant's counters show in Stats under its name, and
// a stream takes at most MaxVariants of them.
func TestVariantStats(t *testing.T) {
	t.Parallel()
	cfg := variantCfg()
	cfg.MaxVariants = 2
	m := newTestManager(t, cfg)
	sy := publish(t, m)
	sy.frames(1)
	newVariantFeed(t, m, sy, "480p", 0, false)
	newVariantFeed(t, m, sy, "360p", 0, false)
	video := &ingest.Track{ID: 1, Codec: &codecs.H264{SPS: testSPS, PPS: testPPS}}
	if _, err := m.Publish(ingest.PublishInfo{Name: "test", Variant: "240p", Tracks: []*ingest.Track{video}}); !errors.Is(err, ErrTooManyVariants) {
		t.Fatalf("a third variant: %v, want ErrTooManyVariants", err)
	}
	sy.frames(150)
	st := m.Stats().Streams[0]
	if len(st.Variants) != 2 || st.Variants[0].Name != "360p" || st.Variants[1].Name != "480p" {
		t.Fatalf("variants %+v", st.Variants)
	}
	for _, v := range st.Variants {
		if v.Video.Frames != 150 || v.Video.Bytes == 0 || v.Parts < 10 || v.Segments < 1 || v.Publishes != 1 {
			t.Errorf("%s: %+v", v.Name, v)
		}
	}
}

// TestVariantSourceCloses: when the source closes mid-segment, a variant
// that has its frames publishes its part of the short last segment too,
// complete, not as a gap.
func TestVariantSourceCloses(t *testing.T) {
	t.Parallel()
	cfg := variantCfg()
	cfg.GracePeriod = time.Minute
	m := newTestManager(t, cfg)
	sy := publish(t, m)
	sy.frames(1)
	f := newVariantFeed(t, m, sy, "480p", 0, false)
	sy.frames(130) // the third segment is 11 frames in
	sy.pub.Close()
	if err := f.pub.WriteUnit(&ingest.Unit{Track: f.track, PTS: time.Hour, DTS: time.Hour, AU: [][]byte{{0x65, 1}}}); !errors.Is(err, ErrSourceGone) {
		t.Fatalf("variant write after the source closed: %v", err)
	}
	f.pub.Close()
	src := parseMedia(t, mustFetch(t, m, mediaReq(-1, -1, SkipNone)).Body, m.Config())
	vm := parseMedia(t, mustFetch(t, m, fileReq("480p.stream.m3u8")).Body, m.Config())
	// It joined at the second segment, the first whose start it had.
	if vm.MediaSequence+len(vm.Segments) != src.MediaSequence+len(src.Segments) || len(vm.Parts) != 0 || !vm.Endlist && vm.PreloadHint != nil {
		t.Fatalf("variant segments %d-%d, open parts %d; the source's end at %d", vm.MediaSequence, vm.MediaSequence+len(vm.Segments), len(vm.Parts), src.MediaSequence+len(src.Segments))
	}
	last, srcLast := vm.Segments[len(vm.Segments)-1], src.Segments[len(src.Segments)-1]
	if last.Gap || last.Duration != srcLast.Duration || len(last.Parts) != len(srcLast.Parts) {
		t.Fatalf("variant's last segment %+v, the source's %+v", last, srcLast)
	}
	checkVariantAligned(t, m, "480p", 0)
}

// TestVariantBlockedPerStream: MaxBlockedPerStream counts a stream's
// blocked requests across its renditions.
func TestVariantBlockedPerStream(t *testing.T) {
	t.Parallel()
	cfg := variantCfg()
	cfg.MaxBlockedPerStream = 2
	m := newTestManager(t, cfg)
	sy := publish(t, m)
	sy.frames(1)
	newVariantFeed(t, m, sy, "480p", 0, false)
	sy.frames(100)
	next := func(v string) Request {
		msn, idx, _ := lastPartOf(m, v)
		return Request{Stream: "test", File: hlsname.VariantMedia(v), MSN: msn, Part: idx + 1}
	}
	a, b := fetchAsync(m, next("")), fetchAsync(m, next("480p"))
	waitBlocked(t, m, 2)
	for _, v := range []string{"", "480p"} {
		if _, err := m.Fetch(context.Background(), next(v)); !errors.Is(err, ErrUnavailable) {
			t.Errorf("a third blocked request (%q): %v, want ErrUnavailable", v, err)
		}
	}
	sy.frames(10)
	for _, ch := range []<-chan fetchResult{a, b} {
		if r := await(t, ch, 10*time.Second); r.err != nil {
			t.Fatal(r.err)
		}
	}
}
