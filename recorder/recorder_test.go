package recorder

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopcast/shopcast/internal/adminauth"
	"github.com/shopcast/shopcast/packager"
)

var t0 = time.Date(2026, 12, 3, 11, 45, 1, 500e6, time.UTC)

// seg makes the SegmentInfo of segment i of a 2 s cadence.
func seg(session, msn int64, i int, init string, disc bool) packager.SegmentInfo {
	return packager.SegmentInfo{
		Stream: "sale", Session: session, MSN: msn, Discontinuity: disc,
		PDT: t0.Add(time.Duration(i) * 2 * time.Second), Start: time.Duration(i) * 2 * time.Second,
		Duration: 2 * time.Second, Frames: 60, TargetDuration: 2,
		Body: []byte(fmt.Sprintf("segment %d of %s", msn, init)),
		Init: packager.InitInfo{Name: init, Body: []byte("init " + init), Codecs: []string{"avc1.64001f", "mp4a.40.2"}, Width: 1280, Height: 720},
	}
}

func cue(id string, start, end time.Duration) packager.EventInfo {
	ei := packager.EventInfo{
		Stream: "sale", Session: 7,
		Event: packager.Event{ID: id, DateRange: &packager.DateRange{Class: "com.shopcast.product",
			Attrs: []packager.DateRangeAttr{packager.QuotedAttr("X-SKU", id)}}},
		Start: packager.EventTime{Media: start, Wall: t0.Add(start)},
	}
	if end > 0 {
		ei.End = packager.EventTime{Media: end, Wall: t0.Add(end)}
	}
	return ei
}

// waitFile waits until the file at path satisfies cond: the writer has
// its own goroutine, and the file is what a viewer would see.
func waitFile(t *testing.T, path string, cond func([]byte) bool) []byte {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if err == nil && cond(b) {
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: condition not met within 5s; last content:\n%s", path, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func startRecorder(t *testing.T, cfg Config) *Recorder {
	t.Helper()
	r := New(cfg)
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

// TestRecording follows one session: segments written byte for byte, the
// playlist growing as EVENT, a reconnect (new init, discontinuity), cues
// as the live DATERANGE lines (a cancelled one left out, an ended one with
// its end), then the end: VOD and ENDLIST.
func TestRecording(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := startRecorder(t, Config{Dir: dir})
	h := r.Hooks()
	segs := []packager.SegmentInfo{seg(7, 100, 0, "init5.mp4", false), seg(7, 101, 1, "init5.mp4", false)}
	for _, s := range segs {
		h.OnSegment(s)
	}
	recDir := filepath.Join(dir, "sale", "20261203T114501Z")
	pl := waitFile(t, filepath.Join(recDir, "stream.m3u8"), func(b []byte) bool { return bytes.Contains(b, []byte("seg101.m4s")) })
	if !bytes.Contains(pl, []byte("#EXT-X-PLAYLIST-TYPE:EVENT\n")) || bytes.Contains(pl, []byte("ENDLIST")) {
		t.Errorf("growing playlist:\n%s", pl)
	}
	if !r.isActive("sale/20261203T114501Z") || r.Stats().Active != 1 {
		t.Errorf("recording not active: %+v", r.Stats())
	}

	h.OnEvent(cue("a", time.Second, 0))
	h.OnEvent(cue("b", 3*time.Second, 4*time.Second))
	h.OnEvent(cue("gone", 9*time.Second, 0))
	cancelled := cue("gone", 9*time.Second, 0)
	cancelled.Cancelled = true
	h.OnEvent(cancelled)
	h.OnEvent(cue("a", time.Second, 5*time.Second)) // deleted mid-show
	more := []packager.SegmentInfo{seg(7, 102, 2, "init5.mp4", false), seg(7, 103, 3, "init9.mp4", true), seg(7, 104, 4, "init9.mp4", false)}
	for _, s := range more {
		h.OnSegment(s)
	}
	segs = append(segs, more...)
	h.OnStreamEnd(packager.StreamEnd{Stream: "sale", Session: 7})
	// The manifest is written last.
	waitFile(t, filepath.Join(recDir, manifestFile), func(b []byte) bool { return bytes.Contains(b, []byte(`"state": "complete"`)) })
	pl, _ = os.ReadFile(filepath.Join(recDir, "stream.m3u8"))

	a, b := cue("a", 0, 0), cue("b", 0, 0)
	tagA, _ := a.Event.DateRangeTag(t0.Add(time.Second), t0.Add(5*time.Second))
	tagB, _ := b.Event.DateRangeTag(t0.Add(3*time.Second), t0.Add(4*time.Second))
	want := "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:2\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-MEDIA-SEQUENCE:0\n" +
		tagA + "\n" + tagB + "\n" +
		"#EXT-X-MAP:URI=\"init5.mp4\"\n" +
		"#EXT-X-PROGRAM-DATE-TIME:2026-12-03T11:45:01.500Z\n#EXTINF:2.00000,\nseg100.m4s\n" +
		"#EXT-X-PROGRAM-DATE-TIME:2026-12-03T11:45:03.500Z\n#EXTINF:2.00000,\nseg101.m4s\n" +
		"#EXT-X-PROGRAM-DATE-TIME:2026-12-03T11:45:05.500Z\n#EXTINF:2.00000,\nseg102.m4s\n" +
		"#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init9.mp4\"\n" +
		"#EXT-X-PROGRAM-DATE-TIME:2026-12-03T11:45:07.500Z\n#EXTINF:2.00000,\nseg103.m4s\n" +
		"#EXT-X-PROGRAM-DATE-TIME:2026-12-03T11:45:09.500Z\n#EXTINF:2.00000,\nseg104.m4s\n" +
		"#EXT-X-ENDLIST\n"
	if string(pl) != want {
		t.Errorf("playlist:\n%s\nwant:\n%s", pl, want)
	}
	for _, s := range segs {
		for name, body := range map[string][]byte{hlsNameSeg(s.MSN): s.Body, s.Init.Name: s.Init.Body} {
			got, err := os.ReadFile(filepath.Join(recDir, name))
			if err != nil || !bytes.Equal(got, body) {
				t.Errorf("%s: %q, %v; want %q", name, got, err, body)
			}
		}
	}
	m, err := readManifest(recDir)
	if err != nil {
		t.Fatal(err)
	}
	if m.State != StateComplete || m.Segments != 5 || m.DurationMs != 10000 || m.Cues != 2 || m.Discontinuities != 1 ||
		!m.Start.Equal(t0) || !m.End.Equal(t0.Add(10*time.Second)) || m.Width != 1280 || len(m.Codecs) != 2 {
		t.Errorf("manifest %+v", m)
	}
	for deadline := time.Now().Add(5 * time.Second); r.isActive("sale/20261203T114501Z"); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("ended recording still active")
		}
	}

	// The cues as chapters and as a plain list, in playback time: the
	// reconnect's discontinuity is not a gap in it.
	var cues []CueEntry
	cb, _ := os.ReadFile(filepath.Join(recDir, cuesFile))
	if err := json.Unmarshal(cb, &cues); err != nil || len(cues) != 2 {
		t.Fatalf("cues.json: %v\n%s", err, cb)
	}
	if c := cues[0]; c.ID != "a" || c.OffsetMs != 1000 || c.DurationMs != 4000 || c.Title != "a" || c.ProgramDateTime != "2026-12-03T11:45:02.500Z" {
		t.Errorf("cue a: %+v", c)
	}
	var ch []map[string]any
	chb, _ := os.ReadFile(filepath.Join(recDir, chaptersFile))
	if err := json.Unmarshal(chb, &ch); err != nil || len(ch) != 2 || ch[1]["start-time"] != 3.0 || ch[1]["duration"] != 1.0 {
		t.Errorf("chapters.json: %v\n%s", err, chb)
	}
}

func hlsNameSeg(msn int64) string { return fmt.Sprintf("seg%d.m4s", msn) }

// TestRecover checks that a recording left open (a crash: no stream end)
// is closed at the next start, playable up to its last segment.
func TestRecover(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := New(Config{Dir: dir})
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	h := r.Hooks()
	h.OnSegment(seg(7, 100, 0, "init5.mp4", false))
	h.OnSegment(seg(7, 101, 1, "init5.mp4", false))
	r.Close() // no stream end: as after kill -9
	recDir := filepath.Join(dir, "sale", "20261203T114501Z")
	pl, _ := os.ReadFile(filepath.Join(recDir, "stream.m3u8"))
	if bytes.Contains(pl, []byte("ENDLIST")) {
		t.Fatalf("closed without an end:\n%s", pl)
	}
	startRecorder(t, Config{Dir: dir})
	closed, _ := os.ReadFile(filepath.Join(recDir, "stream.m3u8"))
	want := strings.Replace(string(pl), "TYPE:EVENT", "TYPE:VOD", 1) + "#EXT-X-ENDLIST\n"
	if string(closed) != want {
		t.Errorf("recovered playlist:\n%s\nwant:\n%s", closed, want)
	}
	m, err := readManifest(recDir)
	if err != nil || m.State != StateComplete || !m.Recovered || m.Segments != 2 || m.DurationMs != 4000 ||
		m.SizeBytes != int64(2*len("segment 100 of init5.mp4")+len("init init5.mp4")) {
		t.Errorf("recovered manifest %+v, %v", m, err)
	}
}

// TestPaused checks that low disk space pauses writing without blocking
// the hooks, with the metric and a log line, and that the recording goes
// on after a discontinuity once there is space again.
func TestPaused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var free atomic.Int64
	free.Store(10)
	r := startRecorder(t, Config{Dir: dir, MinFreeBytes: 100, FreeBytes: func(string) (int64, error) { return free.Load(), nil }})
	h := r.Hooks()
	h.OnSegment(seg(7, 100, 0, "init5.mp4", false))
	deadline := time.Now().Add(5 * time.Second)
	for r.Stats().SegmentsDropped < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("segment not dropped: %+v", r.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !r.Stats().Paused {
		t.Errorf("not paused: %+v", r.Stats())
	}
	free.Store(1000)
	h.OnSegment(seg(7, 101, 1, "init5.mp4", false))
	h.OnSegment(seg(7, 102, 2, "init5.mp4", false))
	recDir := filepath.Join(dir, "sale", "20261203T114503Z") // the first segment written
	pl := waitFile(t, filepath.Join(recDir, "stream.m3u8"), func(b []byte) bool { return bytes.Contains(b, []byte("seg102")) })
	if bytes.Contains(pl, []byte("seg100")) || r.Stats().Paused {
		t.Errorf("after the pause: %+v\n%s", r.Stats(), pl)
	}
}

// TestQueueFull checks that the hooks drop a segment rather than wait when
// the writer is behind, and that the recording shows the gap as a
// discontinuity.
func TestQueueFull(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := New(Config{Dir: dir, QueueSegments: 2})
	h := r.Hooks()
	// Not started: nothing drains the queue.
	h.OnSegment(seg(7, 100, 0, "init5.mp4", false))
	h.OnSegment(seg(7, 101, 1, "init5.mp4", false))
	h.OnSegment(seg(7, 102, 2, "init5.mp4", false)) // dropped
	if got := r.Stats().SegmentsDropped; got != 1 {
		t.Fatalf("%d dropped, want 1", got)
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	path := filepath.Join(dir, "sale", "20261203T114501Z", "stream.m3u8")
	waitFile(t, path, func(b []byte) bool { return bytes.Contains(b, []byte("seg101")) })
	h.OnSegment(seg(7, 103, 3, "init5.mp4", false))
	pl := waitFile(t, path, func(b []byte) bool { return bytes.Contains(b, []byte("seg103")) })
	if !bytes.Contains(pl, []byte("seg101.m4s\n#EXT-X-DISCONTINUITY\n#EXT-X-PROGRAM-DATE-TIME:2026-12-03T11:45:07.500Z\n")) {
		t.Errorf("no discontinuity at the gap:\n%s", pl)
	}
}

// TestServe checks the HTTP side: cache headers (immutable segments, a
// short max-age while the playlist grows), ETag and Range through
// ServeContent, the multivariant playlist, the API and DELETE's rule.
func TestServe(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := startRecorder(t, Config{Dir: dir})
	mux := http.NewServeMux()
	r.Register(mux.Handle, adminauth.Rule{Token: "secret"})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	h := r.Hooks()
	h.OnSegment(seg(7, 100, 0, "init5.mp4", false))
	recDir := filepath.Join(dir, "sale", "20261203T114501Z")
	waitFile(t, filepath.Join(recDir, "manifest.json"), func([]byte) bool { return true })
	base := srv.URL + "/recordings/sale/20261203T114501Z/"

	do := func(method, url string, hdr ...string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, url, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for _, tc := range []struct {
		file, cache string
	}{
		{"seg100.m4s", cacheImmutable},
		{"init5.mp4", cacheImmutable},
		{"stream.m3u8", cacheGrowing},
		{"index.m3u8", cacheGrowing},
	} {
		resp := do("GET", base+tc.file)
		if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != tc.cache || resp.Header.Get("ETag") == "" {
			t.Errorf("%s: %d %q %q", tc.file, resp.StatusCode, resp.Header.Get("Cache-Control"), resp.Header.Get("ETag"))
		}
		if again := do("GET", base+tc.file, "If-None-Match", resp.Header.Get("ETag")); again.StatusCode != 304 {
			t.Errorf("%s: If-None-Match gave %d", tc.file, again.StatusCode)
		}
	}
	if resp := do("GET", base+"seg100.m4s", "Range", "bytes=0-6"); resp.StatusCode != 206 || resp.ContentLength != 7 {
		t.Errorf("range: %d, %d bytes", resp.StatusCode, resp.ContentLength)
	}
	for _, bad := range []string{"seg999.m4s", "manifest.json", "part1.m4s", "..%2fx"} {
		if resp := do("GET", base+bad); resp.StatusCode != 404 {
			t.Errorf("%s: %d, want 404", bad, resp.StatusCode)
		}
	}
	api := srv.URL + "/api/v1/streams/sale/recordings/20261203T114501Z"
	if resp := do("DELETE", api, "Authorization", "Bearer secret"); resp.StatusCode != http.StatusConflict {
		t.Errorf("DELETE of a live recording: %d, want 409", resp.StatusCode)
	}
	h.OnStreamEnd(packager.StreamEnd{Stream: "sale", Session: 7})
	waitFile(t, filepath.Join(recDir, "stream.m3u8"), func(b []byte) bool { return bytes.Contains(b, []byte("ENDLIST")) })
	for deadline := time.Now().Add(5 * time.Second); r.isActive("sale/20261203T114501Z"); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("ended recording still active")
		}
	}
	if resp := do("GET", base+"stream.m3u8"); resp.Header.Get("Cache-Control") != cacheImmutable {
		t.Errorf("closed playlist: %q", resp.Header.Get("Cache-Control"))
	}
	if resp := do("GET", api); resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("GET recording: %d", resp.StatusCode)
	}
	if resp := do("DELETE", api); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("DELETE without the token: %d, want 401", resp.StatusCode)
	}
	if resp := do("DELETE", api, "Authorization", "Bearer secret"); resp.StatusCode != http.StatusNoContent {
		t.Errorf("DELETE: %d, want 204", resp.StatusCode)
	}
	if _, err := os.Stat(recDir); !os.IsNotExist(err) {
		t.Errorf("recording still there: %v", err)
	}
}

// TestSweep checks that recordings past the retention go and newer ones
// stay.
func TestSweep(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for id, end := range map[string]time.Time{"20200101T000000Z": time.Now().Add(-48 * time.Hour), "20200102T000000Z": time.Now()} {
		d := filepath.Join(dir, "sale", id)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		b, _ := (&Manifest{Stream: "sale", ID: id, State: StateComplete, End: end}).marshal()
		if err := os.WriteFile(filepath.Join(d, manifestFile), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	startRecorder(t, Config{Dir: dir, Retention: 24 * time.Hour})
	if _, err := os.Stat(filepath.Join(dir, "sale", "20200101T000000Z")); !os.IsNotExist(err) {
		t.Errorf("old recording kept: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "sale", "20200102T000000Z")); err != nil {
		t.Errorf("new recording removed: %v", err)
	}
}

// TestWriteError checks that a failed write pauses recording for
// RetryAfter (counted, the hooks still never wait) and that the recording
// goes on after it with a discontinuity.
func TestWriteError(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := startRecorder(t, Config{Dir: dir, RetryAfter: 50 * time.Millisecond})
	h := r.Hooks()
	h.OnSegment(seg(7, 100, 0, "init5.mp4", false))
	recDir := filepath.Join(dir, "sale", "20261203T114501Z")
	path := filepath.Join(recDir, "stream.m3u8")
	// The manifest is the last file written for a segment.
	waitFile(t, filepath.Join(recDir, manifestFile), func(b []byte) bool { return bytes.Contains(b, []byte(`"segments": 1`)) })
	// The directory vanishes under the recorder: every write fails.
	if err := os.RemoveAll(recDir); err != nil {
		t.Fatal(err)
	}
	h.OnSegment(seg(7, 101, 1, "init5.mp4", false))
	deadline := time.Now().Add(5 * time.Second)
	for st := r.Stats(); st.WriteErrors == 0 || !st.Paused; st = r.Stats() {
		if time.Now().After(deadline) {
			t.Fatalf("no write error counted: %+v", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := os.MkdirAll(recDir, 0o755); err != nil {
		t.Fatal(err)
	}
	// After RetryAfter the next segment is written, after a gap.
	for i := 2; ; i++ {
		// One segment at a time, each either dropped (still paused) or
		// written.
		dropped := r.Stats().SegmentsDropped
		h.OnSegment(seg(7, int64(100+i), i, "init5.mp4", false))
		want := []byte(fmt.Sprintf("seg%d.m4s", 100+i))
		for {
			b, err := os.ReadFile(path)
			if err == nil && bytes.Contains(b, want) {
				if !bytes.Contains(b, []byte("#EXT-X-DISCONTINUITY\n")) || r.Stats().Paused {
					t.Errorf("after the error: %+v\n%s", r.Stats(), b)
				}
				return
			}
			if r.Stats().SegmentsDropped > dropped {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("recording did not resume: %+v", r.Stats())
			}
			time.Sleep(time.Millisecond)
		}
	}
}

// TestSessions checks that a stream coming back after it ended is a new
// recording, named by its own start, and that two starting within one
// second still get distinct, sortable ids.
func TestSessions(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := startRecorder(t, Config{Dir: dir})
	h := r.Hooks()
	for _, session := range []int64{7, 8, 9} {
		s := seg(session, 100+session, 0, "init5.mp4", false)
		if session == 9 {
			s.PDT = s.PDT.Add(time.Minute)
		}
		h.OnSegment(s)
		h.OnStreamEnd(packager.StreamEnd{Stream: "sale", Session: session})
	}
	want := []string{"20261203T114601Z", "20261203T114501Z-2", "20261203T114501Z"}
	deadline := time.Now().Add(5 * time.Second)
	for {
		var ids []string
		complete := 0
		for _, m := range r.List() {
			ids = append(ids, m.ID)
			if m.State == StateComplete {
				complete++
			}
		}
		if complete == 3 {
			if fmt.Sprint(ids) != fmt.Sprint(want) {
				t.Errorf("recordings %v, want %v (newest first)", ids, want)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("recordings %v", ids)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type fakeVerifier struct{}

func (fakeVerifier) Verify(name, token string, _ time.Time) (time.Time, error) {
	if name == "sale" && token == "good+1" {
		return time.Now().Add(time.Hour), nil
	}
	return time.Time{}, fmt.Errorf("bad token")
}

// TestPlayAuth checks that with signed play URLs on a recording is no
// easier to get than the live stream: every file needs the stream's token,
// and the playlists carry it on their URIs.
func TestPlayAuth(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := startRecorder(t, Config{Dir: dir, PlayAuth: fakeVerifier{}})
	mux := http.NewServeMux()
	r.Register(mux.Handle, adminauth.Rule{})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	r.Hooks().OnSegment(seg(7, 100, 0, "init5.mp4", false))
	waitFile(t, filepath.Join(dir, "sale", "20261203T114501Z", manifestFile), func([]byte) bool { return true })
	base := srv.URL + "/recordings/sale/20261203T114501Z/"
	for _, file := range []string{"index.m3u8", "stream.m3u8", "seg100.m4s", "init5.mp4", "chapters.json", "clips/x.mp4"} {
		for _, q := range []string{"", "?token=bad", "?token=good%2B2"} {
			resp, err := http.Get(base + file + q)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("%s%s: %d, want 403", file, q, resp.StatusCode)
			}
		}
	}
	get := func(file string) string {
		t.Helper()
		resp, err := http.Get(base + file + "?token=good%2B1")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		if resp.StatusCode != 200 {
			t.Errorf("%s with the token: %d", file, resp.StatusCode)
		}
		return b.String()
	}
	if mv := get("index.m3u8"); !strings.Contains(mv, "\nstream.m3u8?token=good%2B1\n") || !strings.Contains(mv, `URI="chapters.json?token=good%2B1"`) {
		t.Errorf("multivariant without the token on its URIs:\n%s", mv)
	}
	if pl := get("stream.m3u8"); !strings.Contains(pl, "\nseg100.m4s?token=good%2B1\n") || !strings.Contains(pl, `URI="init5.mp4?token=good%2B1"`) {
		t.Errorf("media playlist without the token on its URIs:\n%s", pl)
	}
	get("seg100.m4s")
}
