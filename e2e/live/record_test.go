package live

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"
	"github.com/bluenviron/gohlslib/v2/pkg/playlist"

	"github.com/shopcast/shopcast/internal/e2etest"
	"github.com/shopcast/shopcast/internal/server"
)

// liveSegments fetches every complete segment the live playlist lists, as
// a viewer would, while the stream runs: what the recording must equal.
type liveSegments struct {
	mu   sync.Mutex
	segs map[string][]byte
}

var segLine = regexp.MustCompile(`(?m)^(seg[0-9]+\.m4s)$`)

func (l *liveSegments) run(ctx context.Context, base string) {
	for ctx.Err() == nil {
		pl, err := fetchBody(ctx, base+"stream.m3u8")
		if err == nil {
			for _, m := range segLine.FindAllSubmatch(pl, -1) {
				name := string(m[1])
				l.mu.Lock()
				_, seen := l.segs[name]
				l.mu.Unlock()
				if seen {
					continue
				}
				if b, err := fetchBody(ctx, base+name); err == nil {
					l.mu.Lock()
					l.segs[name] = b
					l.mu.Unlock()
				}
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(300 * time.Millisecond):
		}
	}
}

func (l *liveSegments) get(name string) ([]byte, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.segs[name]
	return b, ok
}

// recordingJSON is what the recordings API answers about one recording.
type recordingJSON struct {
	Stream          string    `json:"stream"`
	ID              string    `json:"id"`
	State           string    `json:"state"`
	Start           time.Time `json:"start"`
	End             time.Time `json:"end"`
	DurationMs      int64     `json:"duration_ms"`
	Segments        int       `json:"segments"`
	Discontinuities int       `json:"discontinuities"`
	Codecs          []string  `json:"codecs"`
	Cues            int       `json:"cues"`
	Recovered       bool      `json:"recovered"`
	URL             string    `json:"url"`
	Playlist        string    `json:"playlist"`
}

func listRecordings(t *testing.T, httpBase, stream string) []recordingJSON {
	t.Helper()
	code, b, _ := e2etest.Get(t, httpBase+"/api/v1/streams/"+stream+"/recordings")
	if code != 200 {
		t.Fatalf("recordings API: %d %s", code, b)
	}
	var out struct {
		Recordings []recordingJSON `json:"recordings"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("recordings API: %v: %s", err, b)
	}
	return out.Recordings
}

func ffmpegPublish(t *testing.T, ctx context.Context, url string, seconds int) (*exec.Cmd, *strings.Builder) {
	t.Helper()
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Fatal("ffmpeg is required (make test installs it)")
	}
	cmd := exec.CommandContext(ctx, ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-re",
		"-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", fmt.Sprint(seconds), "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-profile:v", "high",
		"-pix_fmt", "yuv420p", "-g", "60", "-keyint_min", "60", "-sc_threshold", "0", "-b:v", "800k",
		"-c:a", "aac", "-b:a", "96k", "-ar", "48000", "-ac", "2", "-f", "flv", url)
	out := &strings.Builder{}
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, out
}

// TestE2ERecord records a sale end to end. Real ffmpeg publishes (as OBS
// does) for 12 s, drops, comes back within the grace period for 8 s more
// (about 20 s in all, shorter than the 60 s to keep the suite
// fast), and three cues are posted: one "now" for 4 s, one scheduled, one
// open-ended deleted early. Once the stream ended, the one recording is
// checked with players' parsers (gohlslib, hls-m3u8) and mp4ff:
//   - a VOD playlist with EXT-X-ENDLIST and one discontinuity (the
//     reconnect), every segment byte-identical to the live segment of the
//     same sequence number fetched during the run;
//   - every cue a DATERANGE whose START-DATE (and the deleted one's
//     END-DATE) maps through EXT-X-PROGRAM-DATE-TIME to the media time the
//     cue API answered, within 1 ms, and whose emsg mp4ff finds in the
//     segment holding it;
//   - a crash mid-stream (the record directory as a kill -9 leaves it,
//     copied while the stream ran) is closed by the next server's start
//     and plays up to its last complete segment.
func TestE2ERecord(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	crashDir, recDir := t.TempDir(), t.TempDir()
	srv := startServer(t, func(c *server.Config) { c.GracePeriod, c.RecordDir = 3*time.Second, recDir })
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	base := srv.HTTP + "/live/sale/"
	cmd, out := ffmpegPublish(t, ctx, srv.RTMP+"/live/sale", 12)
	e2etest.WaitUntil(t, 20*time.Second, "the stream to appear", func() bool {
		code, _, _ := e2etest.Get(t, base+"index.m3u8")
		return code == 200
	})
	live := &liveSegments{segs: map[string][]byte{}}
	liveCtx, stopLive := context.WithCancel(ctx)
	liveDone := make(chan struct{})
	go func() { defer close(liveDone); live.run(liveCtx, base) }()
	defer func() { stopLive(); <-liveDone }()

	// The recording grows while live: an EVENT playlist.
	var recs []recordingJSON
	e2etest.WaitUntil(t, 20*time.Second, "a recording to start", func() bool {
		recs = listRecordings(t, srv.HTTP, "sale")
		return len(recs) == 1 && recs[0].Segments > 0
	})
	if recs[0].State != "recording" {
		t.Errorf("live recording in state %q", recs[0].State)
	}
	code, growing, hdr := e2etest.Get(t, srv.HTTP+recs[0].Playlist)
	if code != 200 || !bytes.Contains(growing, []byte("#EXT-X-PLAYLIST-TYPE:EVENT")) || bytes.Contains(growing, []byte("ENDLIST")) ||
		hdr.Get("Cache-Control") != "public, max-age=1" {
		t.Errorf("growing playlist: %d %q\n%s", code, hdr.Get("Cache-Control"), growing)
	}

	api := srv.HTTP + "/api/v1/streams/sale/cues"
	now := mustCue(t, "POST", api, cueDoc(t, "rec-now", "now", 4000), 201)
	open := mustCue(t, "POST", api, cueDoc(t, "rec-deleted", "now", 0), 201)
	sched := mustCue(t, "POST", api, cueDoc(t, "rec-scheduled", now.MediaTimeMs+5000, 2000), 201)
	openPDT, err := time.Parse(time.RFC3339Nano, open.ProgramDateTime)
	if err != nil {
		t.Fatalf("cue %+v: %v", open, err)
	}
	e2etest.WaitUntil(t, 10*time.Second, "a segment after the open cue's start", func() bool {
		return newestPDT(t, base).After(openPDT.Add(time.Second))
	})
	deleted := mustCue(t, "DELETE", api+"/rec-deleted", nil, 200)
	if deleted.EndMediaTimeMs == nil {
		t.Fatalf("deleted cue without an end: %+v", deleted)
	}

	if err := cmd.Wait(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	// A copy of the record directory now is what a crash leaves: the
	// playlist first, then the files it lists (fsynced before it was).
	copyRecordings(t, recDir, crashDir)

	// Back within the grace period: the same recording, a discontinuity.
	cmd, out = ffmpegPublish(t, ctx, srv.RTMP+"/live/sale", 8)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	e2etest.WaitUntil(t, 20*time.Second, "the recording to be complete", func() bool {
		recs = listRecordings(t, srv.HTTP, "sale")
		return len(recs) == 1 && recs[0].State == "complete"
	})
	stopLive()
	<-liveDone
	rec := recs[0]
	if rec.Discontinuities != 1 || rec.Cues != 3 || len(rec.Codecs) != 2 || rec.DurationMs < 17000 {
		t.Errorf("recording %+v: want one discontinuity, 3 cues, 2 codecs, about 20 s", rec)
	}

	if _, page, _ := e2etest.Get(t, srv.HTTP+"/"); !bytes.Contains(page, []byte(`<a href="/replay/sale/`+rec.ID+`">sale</a>`)) || !bytes.Contains(page, []byte("3 products")) {
		t.Errorf("the index page does not list the sale:\n%s", page)
	}

	code, body, hdr := e2etest.Get(t, srv.HTTP+rec.Playlist)
	if code != 200 || hdr.Get("Cache-Control") != "public, max-age=31536000, immutable" || hdr.Get("ETag") == "" {
		t.Errorf("closed playlist: %d %q %q", code, hdr.Get("Cache-Control"), hdr.Get("ETag"))
	}
	pl, err := playlist.Unmarshal(body)
	if err != nil {
		t.Fatalf("gohlslib cannot parse the recording:\n%s\n%v", body, err)
	}
	gm, ok := pl.(*playlist.Media)
	if !ok || !gm.Endlist || gm.PlaylistType == nil || *gm.PlaylistType != playlist.MediaPlaylistTypeVOD {
		t.Fatalf("gohlslib: not a VOD playlist with ENDLIST:\n%s", body)
	}
	hm, _ := decodeM3U8(t, body)
	if int(hm.Count()) != len(gm.Segments) || len(hm.DateRanges) != 3 {
		t.Errorf("hls-m3u8: %d segments, %d date ranges; gohlslib: %d segments", hm.Count(), len(hm.DateRanges), len(gm.Segments))
	}
	if n := bytes.Count(body, []byte("#EXT-X-DISCONTINUITY\n")); n != 1 {
		t.Errorf("%d discontinuities in the playlist, want 1", n)
	}
	code, mv, _ := e2etest.Get(t, srv.HTTP+rec.URL)
	if code != 200 || !regexp.MustCompile(`BANDWIDTH=\d+,AVERAGE-BANDWIDTH=\d+,RESOLUTION=640x360,FRAME-RATE=[\d.]+,CODECS="avc1\.[0-9a-f]+,mp4a\.40\.2"\nstream.m3u8`).Match(mv) {
		t.Errorf("multivariant playlist:\n%s", mv)
	}
	if _, err := playlist.Unmarshal(mv); err != nil {
		t.Errorf("gohlslib cannot parse the multivariant playlist: %v", err)
	}

	// Every segment as live had it, and its media times and emsgs.
	recBase := srv.HTTP + strings.TrimSuffix(rec.Playlist, "stream.m3u8")
	type anchor struct {
		pdt   time.Time
		start int64 // ticks
		end   int64
		emsgs []*mp4.EmsgBox
	}
	var anchors []anchor
	var videoID, timescale uint32
	for i, seg := range hm.GetAllSegments() {
		// hls-m3u8 keeps the first EXT-X-MAP on the playlist.
		m := seg.Map
		if i == 0 && m == nil {
			m = hm.Map
		}
		if m != nil {
			_, init, _ := e2etest.Get(t, recBase+m.URI)
			file, err := mp4.DecodeFile(bytes.NewReader(init))
			if err != nil || file.Init == nil {
				t.Fatalf("mp4ff: init %s: %v", m.URI, err)
			}
			for _, trak := range file.Init.Moov.Traks {
				if trak.Mdia.Hdlr.HandlerType == "vide" {
					videoID, timescale = trak.Tkhd.TrackID, trak.Mdia.Mdhd.Timescale
				}
			}
		}
		code, b, hdr := e2etest.Get(t, recBase+seg.URI)
		if code != 200 || hdr.Get("Cache-Control") != "public, max-age=31536000, immutable" {
			t.Errorf("%s: %d %q", seg.URI, code, hdr.Get("Cache-Control"))
		}
		if lb, ok := live.get(seg.URI); !ok {
			t.Errorf("%s: recorded, never listed live", seg.URI)
		} else if !bytes.Equal(lb, b) {
			t.Errorf("%s: recorded bytes differ from live (%d vs %d bytes)", seg.URI, len(b), len(lb))
		}
		cs, err := decodeCueSegment(b, videoID)
		if err != nil {
			t.Fatalf("%s: %v", seg.URI, err)
		}
		anchors = append(anchors, anchor{seg.ProgramDateTime, int64(cs.tfdt), int64(cs.tfdt) + int64(seg.Duration*float64(timescale)), cs.emsgs})
	}
	if len(anchors) < 8 {
		t.Fatalf("%d segments recorded", len(anchors))
	}
	mediaAt := func(date time.Time) int64 {
		best := anchors[0]
		for _, a := range anchors {
			if !a.pdt.After(date) {
				best = a
			}
		}
		return best.start + date.Sub(best.pdt).Nanoseconds()*int64(timescale)/1e9
	}
	ms := int64(timescale) / 1000
	within := func(what string, ticks, wantMs int64) {
		if d := ticks - wantMs*ms; d < -ms || d > ms {
			t.Errorf("%s: media time %.3f ms through PROGRAM-DATE-TIME, the API said %d ms", what, float64(ticks)/float64(ms), wantMs)
		}
	}
	want := map[string]cueReply{"rec-now": now, "rec-deleted": open, "rec-scheduled": sched}
	for _, dr := range hm.DateRanges {
		c, ok := want[dr.ID]
		if !ok {
			t.Errorf("unexpected DATERANGE %s", dr.ID)
			continue
		}
		delete(want, dr.ID)
		if dr.Class == "" {
			t.Errorf("%s: no CLASS", dr.ID)
		}
		start := mediaAt(dr.StartDate)
		within(dr.ID+" START-DATE", start, c.MediaTimeMs)
		switch dr.ID {
		case "rec-deleted":
			if dr.EndDate == nil {
				t.Errorf("%s: deleted mid-show, no END-DATE", dr.ID)
			} else {
				within(dr.ID+" END-DATE", mediaAt(*dr.EndDate), *deleted.EndMediaTimeMs)
			}
		default:
			if dr.Duration == nil {
				t.Errorf("%s: no DURATION", dr.ID)
			}
		}
		// mp4ff: the cue's emsg in the segment holding its start.
		found := false
		for _, a := range anchors {
			if start < a.start-ms || start >= a.end {
				continue
			}
			for _, e := range a.emsgs {
				if id, err := id3Cue(e); err == nil && strings.Contains(id, dr.ID) {
					found = true
				}
			}
		}
		if !found {
			t.Errorf("%s: mp4ff finds no emsg of it in the segment holding its start", dr.ID)
		}
	}
	for id := range want {
		t.Errorf("cue %s: no DATERANGE in the recording", id)
	}

	// The products as chapters (Apple's JSON format, from the multivariant
	// playlist) and as a list, at their place in the playback timeline:
	// the sum of EXTINF up to the segment holding START-DATE.
	if !bytes.Contains(mv, []byte(`#EXT-X-SESSION-DATA:DATA-ID="com.apple.hls.chapters",URI="chapters.json"`)) {
		t.Errorf("no chapters in the multivariant playlist:\n%s", mv)
	}
	playbackAt := func(date time.Time) float64 {
		var at, best float64
		for _, seg := range hm.GetAllSegments() {
			if !seg.ProgramDateTime.After(date) {
				best = at + date.Sub(seg.ProgramDateTime).Seconds()
			}
			at += seg.Duration
		}
		return best
	}
	var chapters []struct {
		Chapter   int     `json:"chapter"`
		StartTime float64 `json:"start-time"`
		Titles    []struct {
			Language, Title string
		} `json:"titles"`
	}
	_, chb, _ := e2etest.Get(t, recBase+"chapters.json")
	if err := json.Unmarshal(chb, &chapters); err != nil || len(chapters) != len(hm.DateRanges) {
		t.Fatalf("chapters.json: %v\n%s", err, chb)
	}
	for i, dr := range hm.DateRanges {
		c := chapters[i]
		if d := c.StartTime - playbackAt(dr.StartDate); d < -0.001 || d > 0.001 || len(c.Titles) != 1 || c.Titles[0].Title == "" {
			t.Errorf("chapter %d (%s): %+v, START-DATE at %.3f s of playback", i+1, dr.ID, c, playbackAt(dr.StartDate))
		}
	}

	// A clip of the 4 s product: one MP4 file, whole segments around the
	// cue (a GOP more at most), starting at zero, that ffmpeg decodes
	// without an error.
	code, clip, hdr := e2etest.Get(t, recBase+"clips/rec-now.mp4")
	if code != 200 || !strings.HasPrefix(hdr.Get("Content-Disposition"), "attachment;") || hdr.Get("Content-Type") != "video/mp4" {
		t.Fatalf("clip: %d %q %q", code, hdr.Get("Content-Disposition"), hdr.Get("Content-Type"))
	}
	clipFile := filepath.Join(t.TempDir(), "clip.mp4")
	if err := os.WriteFile(clipFile, clip, 0o644); err != nil {
		t.Fatal(err)
	}
	probe, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "format=duration,start_time", "-of", "default=nw=1", clipFile).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe: %v\n%s", err, probe)
	}
	var clipStart, clipDur float64
	for _, line := range strings.Fields(string(probe)) {
		k, v, _ := strings.Cut(line, "=")
		switch k {
		case "start_time":
			_, err = fmt.Sscan(v, &clipStart)
		case "duration":
			_, err = fmt.Sscan(v, &clipDur)
		}
	}
	if err != nil || clipDur == 0 {
		t.Fatalf("ffprobe: %v\n%s", err, probe)
	}
	if clipStart > 0.05 || clipDur < 4 || clipDur > 4+2+0.05 {
		t.Errorf("clip of a 4 s cue: start %.3f s, duration %.3f s; want 0 and 4 s to a GOP (2 s) more", clipStart, clipDur)
	}
	if out, err := exec.Command("ffmpeg", "-v", "error", "-i", clipFile, "-f", "null", "-").CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("ffmpeg cannot decode the clip: %v\n%s", err, out)
	}

	// The crash: a new server on that directory closes the recording.
	srv2 := e2etest.Start(t, testConfig(t, []func(*server.Config){func(c *server.Config) { c.RecordDir = crashDir }}))
	crashed := listRecordings(t, srv2.HTTP, "sale")
	if len(crashed) != 1 || crashed[0].State != "complete" || !crashed[0].Recovered || crashed[0].Segments < 3 {
		t.Fatalf("after the crash: %+v", crashed)
	}
	_, body, _ = e2etest.Get(t, srv2.HTTP+crashed[0].Playlist)
	cp, err := playlist.Unmarshal(body)
	if err != nil {
		t.Fatalf("gohlslib cannot parse the recovered recording: %v\n%s", err, body)
	}
	cm := cp.(*playlist.Media)
	if !cm.Endlist {
		t.Errorf("recovered recording without ENDLIST:\n%s", body)
	}
	crashBase := srv2.HTTP + strings.TrimSuffix(crashed[0].Playlist, "stream.m3u8")
	for _, seg := range cm.Segments {
		_, b, _ := e2etest.Get(t, crashBase+seg.URI)
		if lb, ok := live.get(seg.URI); !ok || !bytes.Equal(lb, b) {
			t.Errorf("recovered %s differs from live", seg.URI)
		}
	}
	t.Logf("recording %s: %d segments, %d ms, %d cues; %d live segments fetched; the crash copy kept %d segments",
		rec.ID, len(anchors), rec.DurationMs, rec.Cues, len(live.segs), len(cm.Segments))
}

var pdtLine = regexp.MustCompile(`(?m)^#EXT-X-PROGRAM-DATE-TIME:(.+)$`)

// newestPDT is the program date-time of the newest segment the live
// playlist lists.
func newestPDT(t *testing.T, base string) time.Time {
	t.Helper()
	_, b, _ := e2etest.Get(t, base+"stream.m3u8")
	all := pdtLine.FindAllSubmatch(b, -1)
	if len(all) == 0 {
		return time.Time{}
	}
	pdt, _ := time.Parse(time.RFC3339Nano, string(all[len(all)-1][1]))
	return pdt
}

// copyRecordings copies every recording's directory under src to dst,
// each playlist before the files it lists: the state a kill -9 at that
// moment leaves on disk.
func copyRecordings(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if err := os.MkdirAll(filepath.Join(dst, rel), 0o755); err != nil {
			return err
		}
		pl, err := os.ReadFile(filepath.Join(path, "stream.m3u8"))
		if err != nil {
			return nil // not a recording's directory
		}
		if err := os.WriteFile(filepath.Join(dst, rel, "stream.m3u8"), pl, 0o644); err != nil {
			return err
		}
		entries, err := os.ReadDir(path)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if e.IsDir() || e.Name() == "stream.m3u8" || strings.HasSuffix(e.Name(), ".tmp") {
				continue
			}
			b, err := os.ReadFile(filepath.Join(path, e.Name()))
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(dst, rel, e.Name()), b, 0o644); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("copy of the recordings: %v", err)
	}
}

// TestE2ERecordDiskFull fills the disk (a faked free-space reading) while
// ffmpeg publishes: the live stream keeps every part on time (the playlist
// checker follows it), the log and the metric say recording paused, and
// once there is room again the recording starts with what comes next.
func TestE2ERecordDiskFull(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	var free atomic.Int64
	srv := startServer(t, func(c *server.Config) {
		c.GracePeriod = time.Second
		c.SetRecordFreeBytes(func(string) (int64, error) { return free.Load(), nil })
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	base := srv.HTTP + "/live/full/"
	cmd, out := ffmpegPublish(t, ctx, srv.RTMP+"/live/full", 10)
	e2etest.WaitUntil(t, 20*time.Second, "the stream to appear", func() bool {
		code, _, _ := e2etest.Get(t, base+"index.m3u8")
		return code == 200
	})
	checker := newPlaylistChecker(t, base)
	checkDone := make(chan struct{})
	go func() { defer close(checkDone); checker.run(ctx) }()
	e2etest.WaitUntil(t, 20*time.Second, "recording to pause", func() bool {
		_, m, _ := e2etest.Get(t, srv.HTTP+"/metrics")
		return bytes.Contains(m, []byte("shopcast_record_paused 1")) && strings.Contains(srv.Log.String(), "recording paused: low disk space")
	})
	if recs := listRecordings(t, srv.HTTP, "full"); len(recs) != 0 {
		t.Errorf("recorded on a full disk: %+v", recs)
	}
	free.Store(1 << 40)
	e2etest.WaitUntil(t, 20*time.Second, "recording to resume", func() bool {
		recs := listRecordings(t, srv.HTTP, "full")
		return len(recs) == 1 && recs[0].Segments > 0
	})
	if err := cmd.Wait(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	<-checkDone
	for _, e := range checker.errs {
		t.Error(e)
	}
	if !checker.ended {
		t.Error("the live stream did not end normally")
	}
	_, m, _ := e2etest.Get(t, srv.HTTP+"/metrics")
	if !bytes.Contains(m, []byte("shopcast_record_paused 0")) || !regexp.MustCompile(`shopcast_record_segments_dropped_total [1-9]`).Match(m) {
		t.Errorf("metrics after the pause:\n%s", regexp.MustCompile(`(?m)^shopcast_record.*$`).FindAll(m, -1))
	}
}

// TestE2ERecordKill9 kills the built shopcast binary with SIGKILL while
// ffmpeg publishes, starts it again on the same directories, and checks
// that the recording is closed (VOD, ENDLIST) and keeps every segment the
// live playlist listed before the kill but the newest (its write may have
// been under way), byte for byte.
func TestE2ERecordKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "shopcast")
	if b, err := exec.Command("go", "build", "-o", bin, "../../cmd/shopcast").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	httpAddr, rtmpAddr := e2etest.FreeAddr(t), e2etest.FreeAddr(t)
	args := []string{"-http", httpAddr, "-rtmp", rtmpAddr, "-rtsp", "127.0.0.1:0", "-rtsp_udp_rtp", "", "-rtsp_udp_rtcp", "",
		"-cue_store", filepath.Join(dir, "cues.db"), "-record_dir", filepath.Join(dir, "rec")}
	run := func() (*exec.Cmd, *e2etest.Buffer) {
		cmd := exec.Command(bin, args...)
		log := &e2etest.Buffer{}
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return cmd, log
	}
	httpBase := "http://" + httpAddr
	first, log1 := run()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	e2etest.WaitUntil(t, 10*time.Second, "shopcast to listen", func() bool { return strings.Contains(log1.String(), "shopcast ready") })
	ff, _ := ffmpegPublish(t, ctx, "rtmp://"+rtmpAddr+"/live/killed", 30)
	defer func() { _ = ff.Process.Kill(); _ = ff.Wait() }()
	base := httpBase + "/live/killed/"
	var listed []string
	e2etest.WaitUntil(t, 30*time.Second, "4 live segments", func() bool {
		_, pl, _ := e2etest.Get(t, base+"stream.m3u8")
		listed = listed[:0]
		for _, m := range segLine.FindAllSubmatch(pl, -1) {
			listed = append(listed, string(m[1]))
		}
		return len(listed) >= 4
	})
	live := map[string][]byte{}
	for _, name := range listed {
		_, live[name], _ = e2etest.Get(t, base+name)
	}
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()

	_, log2 := run()
	e2etest.WaitUntil(t, 10*time.Second, "shopcast to listen again", func() bool { return strings.Contains(log2.String(), "shopcast ready") })
	if !strings.Contains(log2.String(), "recording left open by a crash closed") {
		t.Errorf("no recovery logged:\n%s", log2)
	}
	recs := listRecordings(t, httpBase, "killed")
	if len(recs) != 1 || recs[0].State != "complete" || !recs[0].Recovered {
		t.Fatalf("after kill -9: %+v", recs)
	}
	_, body, _ := e2etest.Get(t, httpBase+recs[0].Playlist)
	pl, err := playlist.Unmarshal(body)
	if err != nil {
		t.Fatalf("gohlslib cannot parse the recovered recording: %v\n%s", err, body)
	}
	m := pl.(*playlist.Media)
	if !m.Endlist || m.PlaylistType == nil || *m.PlaylistType != playlist.MediaPlaylistTypeVOD {
		t.Errorf("recovered recording not closed:\n%s", body)
	}
	recBase := httpBase + strings.TrimSuffix(recs[0].Playlist, "stream.m3u8")
	recorded := map[string]bool{}
	for _, seg := range m.Segments {
		code, b, _ := e2etest.Get(t, recBase+seg.URI)
		if code != 200 {
			t.Errorf("%s listed, not served: %d", seg.URI, code)
		}
		if lb, ok := live[seg.URI]; ok && !bytes.Equal(lb, b) {
			t.Errorf("%s differs from live", seg.URI)
		}
		recorded[seg.URI] = true
	}
	for _, name := range listed[:len(listed)-1] {
		if !recorded[name] {
			t.Errorf("%s, complete before the kill, lost", name)
		}
	}
	t.Logf("live listed %d segments before the kill; the recovered recording has %d", len(listed), len(m.Segments))
}
