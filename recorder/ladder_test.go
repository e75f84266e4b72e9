package recorder

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bluenviron/gohlslib/v2/pkg/playlist"

	"github.com/shopcast/shopcast/internal/adminauth"
	"github.com/shopcast/shopcast/packager"
)

// vseg is seg as variant v's, with its own init section and picture.
func vseg(v string, msn int64, i int, height int) packager.SegmentInfo {
	si := seg(7, msn, i, v+".init9.mp4", false)
	si.Variant = v
	si.Body = []byte(v + " " + string(si.Body))
	si.Init.Height, si.Init.Width = height, height*16/9
	si.Init.Codecs = []string{"avc1.64001e", "mp4a.40.2"}
	return si
}

// TestRecordingLadder: a recording keeps every rendition: each variant's
// segments under their live names, a playlist per variant on the source's
// timeline (EXT-X-GAP where it had no segment), growing no further than
// what it has while recording, and a multivariant playlist listing them
// all, the source first.
func TestRecordingLadder(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := startRecorder(t, Config{Dir: dir})
	mux := http.NewServeMux()
	r.Register(mux.Handle, adminauth.Rule{Token: "secret"})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	h := r.Hooks()
	recDir := filepath.Join(dir, "sale", "20261203T114501Z")
	for i := range 5 {
		msn := int64(100 + i)
		h.OnSegment(seg(7, msn, i, "init5.mp4", false))
		h.OnSegment(vseg("360p", msn, i, 360))
		if i != 0 && i != 3 {
			h.OnSegment(vseg("480p", msn, i, 480))
		}
		if i == 3 {
			// While recording, 480p lists up to its last segment only.
			pl := waitFile(t, filepath.Join(recDir, "360p.stream.m3u8"), func(b []byte) bool { return strings.Contains(string(b), "360p.seg103.m4s") })
			if !strings.Contains(string(pl), "#EXT-X-PLAYLIST-TYPE:EVENT") {
				t.Fatalf("growing variant playlist:\n%s", pl)
			}
			pl = waitFile(t, filepath.Join(recDir, "480p.stream.m3u8"), func([]byte) bool { return true })
			if strings.Contains(string(pl), "seg103") || !strings.Contains(string(pl), "#EXT-X-GAP\n#EXTINF:2.00000,\n480p.seg100.m4s") {
				t.Fatalf("480p while recording:\n%s", pl)
			}
		}
	}
	h.OnStreamEnd(packager.StreamEnd{Stream: "sale", Session: 7})
	waitFile(t, filepath.Join(recDir, "manifest.json"), func(b []byte) bool { return strings.Contains(string(b), `"complete"`) })

	get := func(file string) string {
		t.Helper()
		resp, err := http.Get(srv.URL + "/recordings/sale/20261203T114501Z/" + file)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d", file, resp.StatusCode)
		}
		return string(b)
	}
	mvText := get("index.m3u8")
	pl, err := playlist.Unmarshal([]byte(mvText))
	if err != nil {
		t.Fatalf("gohlslib: %v\n%s", err, mvText)
	}
	mv := pl.(*playlist.Multivariant)
	if len(mv.Variants) != 3 || mv.Variants[0].URI != "stream.m3u8" || mv.Variants[1].URI != "480p.stream.m3u8" ||
		mv.Variants[2].URI != "360p.stream.m3u8" || mv.Variants[1].Resolution != "853x480" {
		t.Fatalf("multivariant:\n%s", mvText)
	}
	for _, tt := range []struct {
		v    string
		gaps []int
	}{{"360p", nil}, {"480p", []int{0, 3}}} {
		text := get(tt.v + ".stream.m3u8")
		pl, err := playlist.Unmarshal([]byte(text))
		if err != nil {
			t.Fatalf("gohlslib: %v\n%s", err, text)
		}
		mp := pl.(*playlist.Media)
		if !mp.Endlist || len(mp.Segments) != 5 || mp.Map == nil || mp.Map.URI != tt.v+".init9.mp4" {
			t.Fatalf("%s:\n%s", tt.v, text)
		}
		for i, s := range mp.Segments {
			want := false
			for _, g := range tt.gaps {
				want = want || g == i
			}
			if s.Gap != want {
				t.Fatalf("%s segment %d: gap %v\n%s", tt.v, i, s.Gap, text)
			}
			if want {
				continue
			}
			if b := get(s.URI); b != tt.v+" segment "+s.URI[len(tt.v)+4:len(s.URI)-4]+" of "+tt.v+".init9.mp4" {
				t.Fatalf("%s: %q", s.URI, b)
			}
		}
	}
	if b, err := os.ReadFile(filepath.Join(recDir, "480p.init9.mp4")); err != nil || string(b) != "init 480p.init9.mp4" {
		t.Fatalf("480p init: %q %v", b, err)
	}
}
