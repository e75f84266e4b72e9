package ladder

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gohlslib/v2"
	hlscodecs "github.com/bluenviron/gohlslib/v2/pkg/codecs"
	"github.com/bluenviron/gohlslib/v2/pkg/playlist"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/shopcast/shopcast/internal/e2etest"
	"github.com/shopcast/shopcast/internal/server"
)

// TestLadderMultitrack publishes three renditions of one picture (720p,
// 480p, 360p, encoded beforehand by ffmpeg from one source, so that their
// frames align) over one Enhanced RTMP connection, as OBS's Enhanced
// Broadcasting sends them, and checks what viewers get:
//
//   - a multivariant playlist with one variant per track, the source on top,
//     each with its measured BANDWIDTH, CODECS, RESOLUTION and FRAME-RATE,
//     that gohlslib's parser and hls-parser in strict mode read, as they do
//     every media playlist (full, blocking reload, delta update);
//   - part N of every rendition starting within one frame of the same media
//     time (mp4ff: the video tfdt), with the same audio (the same tfdt);
//   - a cue posted during the stream: the same emsg box (id and presentation
//     time) in the part of the same number in every rendition, and the same
//     EXT-X-DATERANGE in every media playlist;
//   - every EXT-X-RENDITION-REPORT naming the live edge of its rendition as
//     of the response: between that rendition's edge fetched just before
//     and just after;
//   - gohlslib's Client playing a variant.
func TestLadderMultitrack(t *testing.T) {
	if testing.Short() {
		t.Skip("live end-to-end test: not in -short")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const name = "ladder"
	srv := mtStartLadder(t, name, 720, 480, 360)
	base := srv.HTTP + "/live/" + name + "/"

	var mv *playlist.Multivariant
	var mvBody []byte
	e2etest.WaitUntil(t, 40*time.Second, "three variants in the multivariant playlist", func() bool {
		b, err := mtGet(ctx, base+"index.m3u8")
		if err != nil {
			return false
		}
		pl, err := playlist.Unmarshal(b)
		if err != nil {
			t.Fatalf("gohlslib cannot parse the multivariant playlist: %v\n%s", err, b)
		}
		mv, mvBody = pl.(*playlist.Multivariant), b
		return len(mv.Variants) == 3
	})
	want := []struct{ uri, res string }{
		{"stream.m3u8", "1280x720"}, {"480p.stream.m3u8", "854x480"}, {"360p.stream.m3u8", "640x360"},
	}
	for i, v := range mv.Variants {
		if v.URI != want[i].uri || v.Resolution != want[i].res || v.Bandwidth <= 0 || v.AverageBandwidth == nil ||
			v.FrameRate == nil || *v.FrameRate < 29 || *v.FrameRate > 31 || len(v.Codecs) != 2 ||
			!strings.HasPrefix(v.Codecs[0], "avc1.") || v.Codecs[1] != "mp4a.40.2" {
			t.Fatalf("variant %d: %+v, want %s at %s\n%s", i, v, want[i].uri, want[i].res, mvBody)
		}
		if i > 0 && v.Bandwidth >= mv.Variants[i-1].Bandwidth {
			t.Errorf("%s (%d bit/s) is not smaller than %s (%d bit/s)", v.URI, v.Bandwidth, mv.Variants[i-1].URI, mv.Variants[i-1].Bandwidth)
		}
	}
	if !mv.IndependentSegments {
		t.Fatal("no EXT-X-INDEPENDENT-SEGMENTS")
	}

	edge := func(uri string) (int, int) {
		mp := mtMedia(t, mtMustGet(t, base+uri))
		return mtEdge(mp)
	}
	// A cue, then two more parts of every rendition.
	cueID := mtPostCue(t, srv.HTTP+"/api/v1/streams/"+name+"/cues", "SNK-42")
	srcMSN, srcPart := edge(want[0].uri)
	for _, w := range want {
		e2etest.WaitUntil(t, 20*time.Second, w.uri+" past the cue", func() bool {
			msn, part := edge(w.uri)
			return msn > srcMSN || msn == srcMSN && part >= srcPart+2
		})
	}

	// Rendition reports against the reported renditions' edges fetched
	// just before and just after.
	for _, w := range want {
		before := map[string][2]int{}
		for _, o := range want {
			msn, part := edge(o.uri)
			before[o.uri] = [2]int{msn, part}
		}
		mp := mtMedia(t, mtMustGet(t, base+w.uri))
		after := map[string][2]int{}
		for _, o := range want {
			msn, part := edge(o.uri)
			after[o.uri] = [2]int{msn, part}
		}
		if len(mp.RenditionReport) != len(want)-1 {
			t.Fatalf("%s has %d rendition reports, want %d", w.uri, len(mp.RenditionReport), len(want)-1)
		}
		for _, r := range mp.RenditionReport {
			b, a := before[r.URI], after[r.URI]
			if r.URI == w.uri || b == [2]int{} || r.LastPart == nil {
				t.Fatalf("%s reports %+v", w.uri, r)
			}
			if !mtBefore(b[0], b[1], r.LastMSN, *r.LastPart) || !mtBefore(r.LastMSN, *r.LastPart, a[0], a[1]) {
				t.Errorf("%s reports %s at %d.%d; its edge was %d.%d before and %d.%d after", w.uri, r.URI, r.LastMSN, *r.LastPart, b[0], b[1], a[0], a[1])
			}
		}
	}

	// Every rendition's parts: the ones all list, compared by number.
	bodies := map[string][]byte{"index.m3u8": mvBody}
	parts := make([]map[int64]string, len(want))
	var dateRanges []string
	videoTrack := make([]uint32, len(want))
	for i, w := range want {
		b := mtMustGet(t, base+w.uri)
		bodies[w.uri] = b
		mp := mtMedia(t, b)
		parts[i] = mtPartURIs(mp)
		var drs []string
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "#EXT-X-DATERANGE:") {
				drs = append(drs, l)
			}
		}
		if i == 0 {
			dateRanges = drs
			if !strings.Contains(strings.Join(drs, "\n"), cueID) {
				t.Fatalf("the cue %s has no DATERANGE in %s:\n%s", cueID, w.uri, b)
			}
		} else if strings.Join(drs, "\n") != strings.Join(dateRanges, "\n") {
			t.Errorf("%s has the date ranges\n%s\nthe source\n%s", w.uri, strings.Join(drs, "\n"), strings.Join(dateRanges, "\n"))
		}
		for id, h := range mtInitTracks(t, mtMustGet(t, base+mp.Map.URI)) {
			if h == "vide" {
				videoTrack[i] = id
			}
		}
		// The blocking reload and the delta update of each, for the strict
		// parser.
		msn, part := mtEdge(mp)
		bodies[w.uri+" blocking"] = mtMustGet(t, base+fmt.Sprintf("%s?_HLS_msn=%d&_HLS_part=%d", w.uri, msn, part+1))
		bodies[w.uri+" delta"] = mtMustGet(t, base+w.uri+"?_HLS_skip=YES")
		// The origin takes the delivery directives on every rendition's
		// playlist: one too far ahead is a 400 (RFC 8216bis 6.2.5.2).
		resp, err := http.Get(base + fmt.Sprintf("%s?_HLS_msn=%d", w.uri, msn+10))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s?_HLS_msn=%d: %d, want 400", w.uri, msn+10, resp.StatusCode)
		}
	}
	const frame = 90000 / 30
	compared, emsgs := 0, 0
	for n, srcURI := range parts[0] {
		var frags []mtFrag
		for i := range want {
			uri, ok := parts[i][n]
			if !ok {
				break
			}
			frags = append(frags, mtDecodePart(t, mtMustGet(t, base+uri)))
		}
		if len(frags) != len(want) {
			continue
		}
		compared++
		src := frags[0]
		for i, f := range frags[1:] {
			d := int64(f.tfdt[videoTrack[i+1]]) - int64(src.tfdt[videoTrack[0]])
			if d > frame || d < -frame {
				t.Errorf("part %d of %s: video tfdt %d, the source's %d (%s)", n, want[i+1].uri, f.tfdt[videoTrack[i+1]], src.tfdt[videoTrack[0]], srcURI)
			}
			if f.tfdt[2] != src.tfdt[2] && videoTrack[0] == 1 {
				t.Errorf("part %d of %s: audio tfdt %d, the source's %d", n, want[i+1].uri, f.tfdt[2], src.tfdt[2])
			}
			if len(f.emsgs) != len(src.emsgs) {
				t.Errorf("part %d of %s: %d emsg boxes, the source's has %d", n, want[i+1].uri, len(f.emsgs), len(src.emsgs))
				continue
			}
			for j, e := range f.emsgs {
				s := src.emsgs[j]
				if e.ID != s.ID || e.PresentationTime != s.PresentationTime || e.TimeScale != s.TimeScale || e.SchemeIDURI != s.SchemeIDURI {
					t.Errorf("part %d of %s: emsg id %d at %d/%d, the source's id %d at %d/%d", n, want[i+1].uri, e.ID, e.PresentationTime, e.TimeScale, s.ID, s.PresentationTime, s.TimeScale)
				}
			}
		}
		emsgs += len(src.emsgs)
	}
	if compared < 6 || emsgs == 0 {
		t.Fatalf("compared %d parts listed by every rendition, with %d emsg boxes", compared, emsgs)
	}

	// Per-variant metrics, labelled by stream and variant.
	metrics := string(mtMustGet(t, srv.HTTP+"/metrics"))
	for _, v := range []string{"480p", "360p"} {
		for _, family := range []string{"shopcast_variant_parts_total", "shopcast_variant_ingest_frames_total", "shopcast_variant_segments_total"} {
			series := family + `{stream="` + name + `",variant="` + v + `"} `
			i := strings.Index(metrics, series)
			if i < 0 || strings.HasPrefix(metrics[i+len(series):], "0\n") {
				t.Errorf("no %s of %s in /metrics", family, v)
			}
		}
	}
	// gohlslib's Client plays the 360p variant.
	var mu sync.Mutex
	frames, partsLoaded := 0, 0
	c := &gohlslib.Client{URI: base + want[2].uri}
	c.OnDownloadPart = func(u string) {
		mu.Lock()
		defer mu.Unlock()
		if !strings.Contains(u, "/360p.part") {
			t.Errorf("the client of 360p loaded %s", u)
		}
		partsLoaded++
	}
	c.OnTracks = func(tracks []*gohlslib.Track) error {
		for _, tr := range tracks {
			if _, ok := tr.Codec.(*hlscodecs.H264); ok {
				c.OnDataH26x(tr, func(_, _ int64, _ [][]byte) {
					mu.Lock()
					frames++
					mu.Unlock()
				})
			}
		}
		return nil
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	e2etest.WaitUntil(t, 30*time.Second, "gohlslib playing 60 frames of 360p", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return frames >= 60 && partsLoaded > 0
	})
	mtStrict(t, bodies)
}

// TestLadderQualityMenu: the watch page of a multitrack stream has a
// Quality menu, worked from the keyboard, listing Auto and the three
// renditions; choosing 360p switches hls.js to it and the video goes on at
// 360 lines; choosing Auto again gives the choice back to hls.js.
func TestLadderQualityMenu(t *testing.T) {
	if testing.Short() {
		t.Skip("browser end-to-end test: not in -short")
	}
	const name = "menu"
	srv := mtStartLadder(t, name, 720, 480, 360)
	e2etest.WaitUntil(t, 40*time.Second, "three variants", func() bool {
		b, err := mtGet(context.Background(), srv.HTTP+"/live/"+name+"/index.m3u8")
		return err == nil && strings.Count(string(b), "#EXT-X-STREAM-INF") == 3
	})
	ctx, cancel := chromedp.NewContext(e2etest.Chromium(t))
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.HTTP+"/watch/"+name)); err != nil {
		t.Fatal(err)
	}
	type menu struct {
		Hidden  bool     `json:"hidden"`
		Options []string `json:"options"`
		Value   string   `json:"value"`
		Level   int      `json:"level"`
		Auto    bool     `json:"auto"`
		Height  int      `json:"height"`
		Time    float64  `json:"time"`
	}
	const read = `(() => { const s = document.getElementById('quality'); const h = window.shopcast && window.shopcast.hls;
	  const v = document.getElementById('video');
	  return s ? {hidden: s.parentElement.hidden, options: [...s.options].map((o) => o.text), value: s.value,
	    level: h ? h.currentLevel : -2, auto: h ? h.autoLevelEnabled : false, height: v.videoHeight, time: v.currentTime} : {hidden: true, options: []}; })()`
	poll := func(what string, cond func(menu) bool) menu {
		t.Helper()
		deadline := time.Now().Add(40 * time.Second)
		for {
			m, err := chromedp.Run(ctx, chromedp.Evaluate[menu](read))
			if err != nil {
				t.Fatal(err)
			}
			if cond(m) {
				return m
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s: %+v", what, m)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	m := poll("the menu", func(m menu) bool { return !m.Hidden && len(m.Options) == 4 && m.Time > 1 })
	if m.Options[1] != "720p" || m.Options[2] != "480p" || m.Options[3] != "360p" || !strings.HasPrefix(m.Options[0], "Auto") || m.Value != "-1" {
		t.Fatalf("menu %+v", m)
	}
	// From the keyboard: focus, three steps down to 360p.
	if err := chromedp.Do(ctx, chromedp.Focus(chromedp.CSS("#quality"))); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := chromedp.Do(ctx, chromedp.KeyEvent(kb.ArrowDown)); err != nil {
			t.Fatal(err)
		}
	}
	m = poll("360p", func(m menu) bool { return m.Value == "0" && m.Level == 0 && !m.Auto && m.Height == 360 })
	at := m.Time
	poll("the video to go on at 360p", func(m menu) bool { return m.Height == 360 && m.Time > at+2 })
	for range 3 {
		if err := chromedp.Do(ctx, chromedp.KeyEvent(kb.ArrowUp)); err != nil {
			t.Fatal(err)
		}
	}
	poll("Auto again", func(m menu) bool { return m.Value == "-1" && m.Auto })
}

// TestLadderRecording: the recording of a multitrack stream keeps the
// ladder: its multivariant playlist lists the three renditions, each a VOD
// playlist of as many segments as the source's, with the variants' segments
// (under their live names) at the source's media times.
func TestLadderRecording(t *testing.T) {
	if testing.Short() {
		t.Skip("live end-to-end test: not in -short")
	}
	const name = "sale"
	recDir := t.TempDir()
	srv, published := mtStartLadderWith(t, name, 2, func(c *server.Config) { c.GracePeriod, c.RecordDir = 2*time.Second, recDir }, 720, 480, 360)
	select {
	case err := <-published:
		if err != nil {
			t.Fatalf("publisher: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the 8 s publisher did not finish in 60 s")
	}
	type recording struct {
		URL, State string
	}
	var rec recording
	e2etest.WaitUntil(t, 30*time.Second, "the recording to be complete", func() bool {
		var out struct {
			Recordings []struct {
				URL   string `json:"url"`
				State string `json:"state"`
			} `json:"recordings"`
		}
		b, err := mtGet(context.Background(), srv.HTTP+"/api/v1/streams/"+name+"/recordings")
		if err != nil || json.Unmarshal(b, &out) != nil || len(out.Recordings) != 1 {
			return false
		}
		rec = recording{out.Recordings[0].URL, out.Recordings[0].State}
		return rec.State == "complete"
	})
	base := srv.HTTP + rec.URL[:strings.LastIndexByte(rec.URL, '/')+1]
	mvBody := mtMustGet(t, srv.HTTP+rec.URL)
	pl, err := playlist.Unmarshal(mvBody)
	if err != nil {
		t.Fatalf("gohlslib: %v\n%s", err, mvBody)
	}
	mv := pl.(*playlist.Multivariant)
	if len(mv.Variants) != 3 || mv.Variants[0].URI != "stream.m3u8" || mv.Variants[1].URI != "480p.stream.m3u8" ||
		mv.Variants[2].URI != "360p.stream.m3u8" || mv.Variants[2].Resolution != "640x360" {
		t.Fatalf("recorded multivariant playlist:\n%s", mvBody)
	}
	bodies := map[string][]byte{"index.m3u8": mvBody}
	var src *playlist.Media
	videoTrack := map[string]uint32{}
	for i, v := range mv.Variants {
		b := mtMustGet(t, base+v.URI)
		bodies[v.URI] = b
		mp := mtMedia(t, b)
		if !mp.Endlist || mp.PlaylistType == nil || *mp.PlaylistType != playlist.MediaPlaylistTypeVOD || len(mp.Segments) < 3 {
			t.Fatalf("recorded %s:\n%s", v.URI, b)
		}
		for id, h := range mtInitTracks(t, mtMustGet(t, base+mp.Map.URI)) {
			if h == "vide" {
				videoTrack[v.URI] = id
			}
		}
		if i == 0 {
			src = mp
			continue
		}
		if len(mp.Segments) != len(src.Segments) {
			t.Fatalf("%s has %d segments, the source %d", v.URI, len(mp.Segments), len(src.Segments))
		}
		gaps := 0
		for j, seg := range mp.Segments {
			if seg.Duration != src.Segments[j].Duration {
				t.Errorf("%s segment %d lasts %v, the source's %v", v.URI, j, seg.Duration, src.Segments[j].Duration)
			}
			if seg.Gap {
				gaps++
				continue
			}
			vf := mtDecodePart(t, mtMustGet(t, base+seg.URI))
			sf := mtDecodePart(t, mtMustGet(t, base+src.Segments[j].URI))
			d := int64(vf.tfdt[videoTrack[v.URI]]) - int64(sf.tfdt[videoTrack["stream.m3u8"]])
			if d > 3000 || d < -3000 {
				t.Errorf("%s: video tfdt %d, the source's %d", seg.URI, vf.tfdt[videoTrack[v.URI]], sf.tfdt[videoTrack["stream.m3u8"]])
			}
		}
		if gaps > 0 {
			t.Errorf("%s: %d of %d recorded segments are gaps", v.URI, gaps, len(mp.Segments))
		}
	}
	mtStrict(t, bodies)
}
