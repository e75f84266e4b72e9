package ladder

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"
	"github.com/bluenviron/gohlslib/v2/pkg/playlist"

	"github.com/shopcast/shopcast/internal/e2etest"
	"github.com/shopcast/shopcast/internal/server"
	"github.com/shopcast/shopcast/internal/testpub"
)

// mtStartLadder starts a server and, on stream name, a multitrack
// publisher of renditions of the given heights (4 s encoded by ffmpeg from
// one source, 30 fps, a keyframe every second, looped in real time), both
// stopped when the test ends.
func mtStartLadder(t *testing.T, name string, heights ...int) *e2etest.Server {
	t.Helper()
	srv, _ := mtStartLadderWith(t, name, 100, nil, heights...)
	return srv
}

// mtStartLadderWith is mtStartLadder with the server's config changed by
// edit (when set) and the 4 s looped loops times; the channel gets the
// publisher's result once it is done.
func mtStartLadderWith(t *testing.T, name string, loops int, edit func(*server.Config), heights ...int) (*e2etest.Server, <-chan error) {
	t.Helper()
	encCtx, encCancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer encCancel()
	files, err := testpub.EncodeLadder(encCtx, t.TempDir(), 4*time.Second, 30, 30, heights...)
	if err != nil {
		t.Fatal(err)
	}
	cfg := e2etest.Config(t)
	if edit != nil {
		edit(&cfg)
	}
	srv := e2etest.Start(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	result := make(chan error, 1)
	go func() {
		err := testpub.PublishMultitrack(ctx, srv.RTMP+"/live/"+name, files, testpub.Options{Loops: loops})
		result <- err
		done <- err
	}()
	t.Cleanup(func() { cancel(); <-done })
	return srv, result
}

// mtGet fetches a URL and returns its body; any status but 200 is an
// error.
func mtGet(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return b, fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return b, nil
}

// mtMustGet is mtGet failing the test.
func mtMustGet(t *testing.T, url string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b, err := mtGet(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// mtMedia parses a media playlist with gohlslib.
func mtMedia(t *testing.T, body []byte) *playlist.Media {
	t.Helper()
	pl, err := playlist.Unmarshal(body)
	if err != nil {
		t.Fatalf("gohlslib cannot parse the playlist: %v\n%s", err, body)
	}
	mp, ok := pl.(*playlist.Media)
	if !ok {
		t.Fatalf("not a media playlist:\n%s", body)
	}
	return mp
}

// mtEdge returns the live edge of a media playlist: the MSN of its last
// part's segment and the part's index there.
func mtEdge(mp *playlist.Media) (msn, part int) {
	if len(mp.Parts) > 0 {
		return mp.MediaSequence + len(mp.Segments), len(mp.Parts) - 1
	}
	last := mp.Segments[len(mp.Segments)-1]
	return mp.MediaSequence + len(mp.Segments) - 1, len(last.Parts) - 1
}

// mtPosition orders live edges: a part count across segments is not known,
// so positions compare as (msn, part).
func mtBefore(msnA, partA, msnB, partB int) bool {
	return msnA < msnB || msnA == msnB && partA <= partB
}

// mtPartURIs returns the part URIs a media playlist lists, by part number
// (the N of [VARIANT.]partN.m4s).
func mtPartURIs(mp *playlist.Media) map[int64]string {
	out := map[int64]string{}
	add := func(uri string) {
		i := strings.LastIndex(uri, "part")
		var n int64
		if _, err := fmt.Sscanf(uri[i:], "part%d.m4s", &n); err == nil {
			out[n] = uri
		}
	}
	for _, s := range mp.Segments {
		for _, p := range s.Parts {
			if !p.Gap {
				add(p.URI)
			}
		}
	}
	for _, p := range mp.Parts {
		if !p.Gap {
			add(p.URI)
		}
	}
	return out
}

// mtFrag is what mp4ff reads of one part: the tfdt of each track and the
// emsg boxes before its moof.
type mtFrag struct {
	tfdt  map[uint32]uint64
	emsgs []*mp4.EmsgBox
}

// mtDecodePart decodes a part with mp4ff.
func mtDecodePart(t *testing.T, body []byte) mtFrag {
	t.Helper()
	f, err := mp4.DecodeFile(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("mp4ff cannot decode the part: %v", err)
	}
	out := mtFrag{tfdt: map[uint32]uint64{}}
	for _, seg := range f.Segments {
		for _, fr := range seg.Fragments {
			out.emsgs = append(out.emsgs, fr.Emsgs...)
			for _, tf := range fr.Moof.Trafs {
				if tf.Tfdt != nil {
					if _, ok := out.tfdt[tf.Tfhd.TrackID]; !ok {
						out.tfdt[tf.Tfhd.TrackID] = tf.Tfdt.BaseMediaDecodeTime()
					}
				}
			}
		}
	}
	return out
}

// mtInitTracks returns the handler of each track of an init segment.
func mtInitTracks(t *testing.T, body []byte) map[uint32]string {
	t.Helper()
	f, err := mp4.DecodeFile(bytes.NewReader(body))
	if err != nil || f.Init == nil {
		t.Fatalf("mp4ff cannot decode the init segment: %v", err)
	}
	out := map[uint32]string{}
	for _, trak := range f.Init.Moov.Traks {
		out[trak.Tkhd.TrackID] = trak.Mdia.Hdlr.HandlerType
	}
	return out
}

// mtPostCue posts a product cue "now" to the cue API and returns its id.
func mtPostCue(t *testing.T, api, sku string) string {
	t.Helper()
	cue := `{"v":1,"type":"product","product":{"sku":"` + sku + `","title":"Court Classic Sneaker",` +
		`"price":{"amount":"89.90","currency":"EUR"},"image_url":"https://cdn.example.com/p/snk-42.jpg",` +
		`"url":"https://shop.example.com/p/snk-42"},"at":"now","duration_ms":4000}`
	resp, err := http.Post(api, "application/json", strings.NewReader(cue))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST cue: %d %s", resp.StatusCode, b)
	}
	var created struct {
		Cue struct {
			ID string `json:"id"`
		} `json:"cue"`
	}
	if err := json.Unmarshal(b, &created); err != nil {
		t.Fatal(err)
	}
	return created.Cue.ID
}

// mtStrict has hls-parser in strict mode read every playlist, by name.
func mtStrict(t *testing.T, playlists map[string][]byte) {
	t.Helper()
	names := make([]string, 0, len(playlists))
	for name := range playlists {
		names = append(names, name)
	}
	sort.Strings(names)
	bodies := make([]string, len(names))
	for i, name := range names {
		bodies[i] = string(playlists[name])
	}
	for i, msg := range e2etest.StrictCheck(t, bodies) {
		if msg != "" {
			t.Errorf("hls-parser (strict) refuses %s: %s\n%s", names[i], msg, bodies[i])
		}
	}
}
