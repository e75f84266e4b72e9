package ladder

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gohlslib/v2"
	hlscodecs "github.com/bluenviron/gohlslib/v2/pkg/codecs"
	"github.com/bluenviron/gohlslib/v2/pkg/playlist"

	"github.com/shopcast/shopcast/internal/e2etest"
	"github.com/shopcast/shopcast/internal/testpub"
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
	encCtx, encCancel := context.WithTimeout(ctx, 2*time.Minute)
	defer encCancel()
	// 4 s, looped: 30 fps, a keyframe every second (2 s segments).
	files, err := testpub.EncodeLadder(encCtx, t.TempDir(), 4*time.Second, 30, 30, 720, 480, 360)
	if err != nil {
		t.Fatal(err)
	}

	const name = "ladder"
	srv := e2etest.Start(t, e2etest.Config(t))
	pubDone := make(chan error, 1)
	go func() {
		pubDone <- testpub.PublishMultitrack(ctx, srv.RTMP+"/live/"+name, files, testpub.Options{Loops: 100})
	}()
	t.Cleanup(func() { cancel(); <-pubDone })
	base := srv.HTTP + "/live/" + name + "/"

	var mv *playlist.Multivariant
	var mvBody []byte
	mtWait(t, 40*time.Second, "three variants in the multivariant playlist", func() bool {
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
		mtWait(t, 20*time.Second, w.uri+" past the cue", func() bool {
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
	mtWait(t, 30*time.Second, "gohlslib playing 60 frames of 360p", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return frames >= 60 && partsLoaded > 0
	})
	mtStrict(t, bodies)
}
