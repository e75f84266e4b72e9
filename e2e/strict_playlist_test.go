package e2e

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopcast/shopcast/internal/e2etest"
	"github.com/shopcast/shopcast/internal/testpub"
)

// TestStrictPlaylists fetches every playlist form from a live stream (the
// multivariant and media playlists, a blocking reload at every part
// position, both delta updates, the TS playlists), with an ended, an
// active, a scheduled and a cancelled cue on it, and has hls-parser 0.16.1
// in strict mode (npm, pinned in package.json) read each. A strict player
// or validator refuses what it refuses: among its rules, Apple's authoring
// spec's "parts only for the last three target durations" and "every part
// but the last of a segment at least 85% of PART-TARGET".
func TestStrictPlaylists(t *testing.T) {
	if testing.Short() {
		t.Skip("live end-to-end test: not in -short")
	}

	const name = "strict"
	srv := e2etest.Start(t, e2etest.Config(t))
	ctx, cancel := context.WithCancel(context.Background())
	pubDone := make(chan error, 1)
	go func() {
		// The 4 s fixture (30 fps, a keyframe every second), looped in real
		// time: 2 s segments of six 0.3 s parts and a last one of 0.2 s.
		pubDone <- testpub.Publish(ctx, srv.RTMP+"/live/"+name, "../testdata/h264_aac.flv", testpub.Options{Loops: 100})
	}()
	t.Cleanup(func() { cancel(); <-pubDone })

	base := srv.HTTP + "/live/" + name + "/"
	media := base + "stream.m3u8"
	e2etest.WaitUntil(t, 20*time.Second, "the media playlist", func() bool {
		code, _ := status(http.MethodGet, media)
		return code == http.StatusOK
	})

	// The date ranges: one ended (posted, then deleted once it is in the
	// playlist), one active, one scheduled after it, and one cancelled
	// before it started (RECENTLY-REMOVED-DATERANGES of the v2 delta
	// update). Their times do not overlap: hls-parser refuses date ranges
	// of one CLASS that overlap.
	api := srv.HTTP + "/api/v1/streams/" + name + "/cues"
	ended, _ := postStrictCue(t, api, `"now"`, 0)
	e2etest.WaitUntil(t, 10*time.Second, "the first cue to start", func() bool {
		code, body := do(t, http.MethodGet, api+"/"+ended, "")
		return code == http.StatusOK && strings.Contains(body, `"state":"active"`)
	})
	// A cue deleted before the part that carries its start is out was
	// never shown to anyone: it is cancelled, not ended. Two parts later it
	// has been carried.
	edge := func() (int64, int64) {
		body, err := get(context.Background(), media)
		if err != nil {
			return -1, -1
		}
		msn, part, _, _ := e2etest.LastPart(body)
		return msn, part
	}
	msn0, part0 := edge()
	e2etest.WaitUntil(t, 10*time.Second, "two more parts", func() bool {
		msn, part := edge()
		return msn > msn0 || part >= part0+2
	})
	deleteCue(t, api, ended)
	e2etest.WaitUntil(t, 10*time.Second, "the ended cue's END-DATE", func() bool {
		body, err := get(context.Background(), media)
		return err == nil && dateRangeOf(body, ended) != "" && strings.Contains(dateRangeOf(body, ended), "END-DATE=")
	})
	active, at := postStrictCue(t, api, `"now"`, 60_000)
	scheduled, _ := postStrictCue(t, api, strconv.FormatInt(at+90_000, 10), 5_000)
	cancelled, _ := postStrictCue(t, api, strconv.FormatInt(at+120_000, 10), 5_000)
	deleteCue(t, api, cancelled)

	var got playlists
	// Blocking reloads as a player makes them, for each position in turn,
	// over three segments: every part of a segment, the request answered
	// by its last part, and the one answered by the next segment's first
	// part, in both forms (_HLS_part one past the last part of a complete
	// segment, and part 0 of the next segment; RFC 8216bis 6.2.5.2).
	if closed := followParts(t, media, 3, &got); closed < 3 {
		// The answer to the request for a segment's last part is the
		// first to list that segment's EXTINF.
		t.Errorf("%d blocking reloads answered by a segment's last part showed the segment complete, want 3", closed)
	}

	// Delta updates need segments older than CAN-SKIP-UNTIL (12 s with 2 s
	// segments). hls-parser 0.16.1 reads EXT-X-SKIP (SKIPPED-SEGMENTS moves
	// the media sequence on) and checks the rest of a delta update as it
	// does a full playlist; it ignores RECENTLY-REMOVED-DATERANGES, which
	// is checked here below.
	e2etest.WaitUntil(t, 40*time.Second, "a delta update with EXT-X-SKIP", func() bool {
		body, err := get(context.Background(), media+"?_HLS_skip=YES")
		return err == nil && strings.Contains(body, "#EXT-X-SKIP:SKIPPED-SEGMENTS=")
	})
	for _, f := range []string{"index.m3u8", "stream.m3u8", "stream_ts.m3u8", "index_ts.m3u8",
		"stream.m3u8?_HLS_skip=YES", "stream.m3u8?_HLS_skip=v2"} {
		body, err := get(context.Background(), base+f)
		if err != nil {
			t.Fatal(err)
		}
		got.add(f, body)
	}
	// The delta forms of a blocking reload, answered by the next part.
	msn, part, complete, ok := e2etest.LastPart(got.body("stream.m3u8"))
	if !ok {
		t.Fatalf("no part in the media playlist:\n%s", got.body("stream.m3u8"))
	}
	if complete {
		msn, part = msn+1, -1
	}
	for _, skip := range []string{"YES", "v2"} {
		f := fmt.Sprintf("stream.m3u8?_HLS_msn=%d&_HLS_part=%d&_HLS_skip=%s", msn, part+1, skip)
		body, err := get(context.Background(), base+f)
		if err != nil {
			t.Fatal(err)
		}
		got.add(f, body)
	}

	// What the forms must hold for the check to mean something.
	for _, f := range []string{"stream.m3u8?_HLS_skip=YES", "stream.m3u8?_HLS_skip=v2"} {
		if !strings.Contains(got.body(f), "#EXT-X-SKIP:SKIPPED-SEGMENTS=") {
			t.Errorf("%s is not a delta update:\n%s", f, got.body(f))
		}
	}
	// RFC 8216bis 4.4.5.2: a tab-delimited list of ids.
	v2 := got.body("stream.m3u8?_HLS_skip=v2")
	removed := regexp.MustCompile(`RECENTLY-REMOVED-DATERANGES="([^"]*)"`).FindStringSubmatch(v2)
	if removed == nil || !slices.Contains(strings.Split(removed[1], "\t"), cancelled) {
		t.Errorf("the v2 delta update does not list the cancelled cue %s as removed:\n%s", cancelled, v2)
	}
	for _, f := range []string{"stream.m3u8", "stream_ts.m3u8"} {
		body := got.body(f)
		if dr := dateRangeOf(body, ended); !strings.Contains(dr, "END-DATE=") {
			t.Errorf("%s: the ended cue %s has no date range with END-DATE: %q", f, ended, dr)
		}
		for _, id := range []string{active, scheduled} {
			if dateRangeOf(body, id) == "" {
				t.Errorf("%s: no date range for cue %s", f, id)
			}
		}
		if dateRangeOf(body, cancelled) != "" {
			t.Errorf("%s: the cancelled cue %s is still listed", f, cancelled)
		}
	}

	bodies := make([]string, len(got.list))
	for i, p := range got.list {
		bodies[i] = p.body
	}
	for i, msg := range e2etest.StrictCheck(t, bodies) {
		if msg != "" {
			t.Errorf("hls-parser 0.16.1 (strict mode) refuses %s: %s\n%s", got.list[i].name, msg, got.list[i].body)
		}
	}
	t.Logf("%d playlists pass hls-parser 0.16.1 in strict mode", len(got.list))
}

// followParts follows the media playlist with blocking reloads, one part
// after another, until it has seen every part of the given number of
// segments and the first part of the segment after them, and adds every
// answer to got. It returns how many answers had a complete segment last.
func followParts(t *testing.T, media string, segments int, got *playlists) (closed int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	body, err := get(ctx, media)
	if err != nil {
		t.Fatal(err)
	}
	msn, part, complete, ok := e2etest.LastPart(body)
	if !ok {
		t.Fatalf("no part in the media playlist:\n%s", body)
	}
	// The segments after this one are seen from their first part.
	first := msn + 1
	next := [][2]int64{{msn, part + 1}}
	if complete {
		next = append(next, [2]int64{msn + 1, 0})
	}
	for {
		var mu sync.Mutex
		var wg sync.WaitGroup
		answers := map[[2]int64]string{}
		for _, pos := range next {
			wg.Add(1)
			go func() {
				defer wg.Done()
				f := fmt.Sprintf("stream.m3u8?_HLS_msn=%d&_HLS_part=%d", pos[0], pos[1])
				b, err := get(ctx, media+f[len("stream.m3u8"):])
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					t.Errorf("%s: %v", f, err)
					return
				}
				answers[pos] = b
				got.add(f, b)
			}()
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
		// The answer shows the part asked for (RFC 8216bis 6.2.5.2: the
		// server holds the request until the playlist contains it).
		var b string
		for pos, a := range answers {
			m, p, _, ok := e2etest.LastPart(a)
			if !ok || !(m > pos[0] || m == pos[0] && p >= pos[1]) {
				t.Fatalf("_HLS_msn=%d&_HLS_part=%d answered with the newest part at %d.%d:\n%s", pos[0], pos[1], m, p, a)
			}
			b = a
		}
		msn, part, complete, _ = e2etest.LastPart(b)
		if complete && msn >= first {
			closed++
		}
		if msn >= first+int64(segments) {
			return closed
		}
		if complete {
			next = [][2]int64{{msn, part + 1}, {msn + 1, 0}}
		} else {
			next = [][2]int64{{msn, part + 1}}
		}
	}
}

// playlists are fetched playlists by the request that got them.
type playlists struct {
	mu   sync.Mutex
	list []fetchedPlaylist
}

type fetchedPlaylist struct{ name, body string }

func (p *playlists) add(name, body string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.list = append(p.list, fetchedPlaylist{name, body})
}

func (p *playlists) body(name string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(p.list) - 1; i >= 0; i-- {
		if p.list[i].name == name {
			return p.list[i].body
		}
	}
	return ""
}

// dateRangeOf returns the EXT-X-DATERANGE line of the cue id, or "".
func dateRangeOf(playlist, id string) string {
	for _, line := range strings.Split(playlist, "\n") {
		if strings.HasPrefix(line, "#EXT-X-DATERANGE:") && strings.Contains(line, `ID="`+id+`"`) {
			return line
		}
	}
	return ""
}

// postStrictCue posts a product cue at at (a JSON value: "now" or a media
// time in ms), lasting durationMs (0: open-ended), and returns its id and
// its media time in ms.
func postStrictCue(t *testing.T, api, at string, durationMs int) (string, int64) {
	t.Helper()
	dur := ""
	if durationMs > 0 {
		dur = fmt.Sprintf(`,"duration_ms":%d`, durationMs)
	}
	cue := `{"v":1,"type":"product","product":{"sku":"SNK-42","title":"Court Classic Sneaker",` +
		`"price":{"amount":"89.90","currency":"EUR"},"image_url":"https://cdn.example.com/p/snk-42.jpg",` +
		`"url":"https://shop.example.com/p/snk-42"},"at":` + at + dur + `}`
	created := postCueJSON(t, api, cue)
	return created.Cue.ID, created.MediaTimeMs
}

func deleteCue(t *testing.T, api, id string) {
	t.Helper()
	if code, body := do(t, http.MethodDelete, api+"/"+id, ""); code != http.StatusOK {
		t.Fatalf("DELETE cue %s: %d %s", id, code, body)
	}
}
