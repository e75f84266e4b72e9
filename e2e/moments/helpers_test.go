package moments

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/shopcast/shopcast/cues"
	"github.com/shopcast/shopcast/internal/e2etest"
)

// startFFmpeg publishes a test pattern and a tone over RTMP in real time,
// with OBS's settings (x264 zerolatency, 1 s GOP, AAC 48 kHz stereo).
func startFFmpeg(t *testing.T, rtmpURL string, seconds int) {
	t.Helper()
	out := &e2etest.Buffer{}
	cmd := exec.Command("ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "warning",
		"-re", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", fmt.Sprint(seconds),
		"-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-profile:v", "high",
		"-pix_fmt", "yuv420p", "-g", "30", "-keyint_min", "30", "-sc_threshold", "0", "-b:v", "800k",
		"-c:a", "aac", "-b:a", "96k", "-ar", "48000", "-ac", "2", "-f", "flv", rtmpURL)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("ffmpeg output:\n%s", e2etest.Tail(out.String(), 3000))
		}
	})
}

func do(t *testing.T, method, u, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// cueResponse is the cue API's view of a cue.
type cueResponse struct {
	Cue            cues.Cue `json:"cue"`
	State          string   `json:"state"`
	MediaTimeMs    int64    `json:"media_time_ms"`
	EndMediaTimeMs *int64   `json:"end_media_time_ms"`
}

func postCue(t *testing.T, api string, cue any) cueResponse {
	t.Helper()
	b, err := json.Marshal(cue)
	if err != nil {
		t.Fatal(err)
	}
	code, body := do(t, http.MethodPost, api, string(b))
	if code != http.StatusCreated {
		t.Fatalf("POST %s: %d %s", b, code, body)
	}
	var out cueResponse
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func getCue(t *testing.T, api, id string) (cueResponse, bool) {
	t.Helper()
	code, body := do(t, http.MethodGet, api+"/"+id, "")
	if code == http.StatusNotFound {
		return cueResponse{}, false
	}
	if code != http.StatusOK {
		t.Fatalf("GET cue %s: %d %s", id, code, body)
	}
	var out cueResponse
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatal(err)
	}
	return out, true
}

// fetched is a media playlist as read at one moment, with the full
// segments it lists.
type fetched struct {
	what     string
	playlist string
	segments map[string][]byte // URI -> bytes
}

// fetchPlaylist reads the media playlist at u as an LL-HLS player does,
// with a blocking reload for the part after the newest one, and every
// complete segment it lists.
//
// A plain GET in the instant between a segment's last part and the next
// segment's first lists the parts of the three complete segments before a
// PRELOAD-HINT, which hls-parser's strict mode counts as a fourth segment
// and refuses (the parts of the oldest are then "greater than three target
// durations from the end"). The blocking reload is answered once the next
// part exists, so it never falls in that instant.
func fetchPlaylist(t *testing.T, what, u string) fetched {
	t.Helper()
	code, body := do(t, http.MethodGet, u, "")
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d", u, code)
	}
	// A request for the part after a segment's last is answered when the
	// segment completes, in that very instant: ask again for the next
	// segment's first part then.
	for range 3 {
		msn, part, complete, ok := lastPartOf(body)
		if !ok {
			break
		}
		if complete {
			msn, part = msn+1, -1
		}
		code, body = do(t, http.MethodGet, fmt.Sprintf("%s?_HLS_msn=%d&_HLS_part=%d", u, msn, part+1), "")
		if code != http.StatusOK {
			t.Fatalf("GET %s (blocking reload): %d", u, code)
		}
		if _, _, complete, _ := lastPartOf(body); !complete {
			break
		}
	}
	f := fetched{what: what, playlist: body, segments: map[string][]byte{}}
	base, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(body, "\n")
	for i, line := range lines {
		if !strings.HasPrefix(line, "#EXTINF:") || i+1 >= len(lines) {
			continue
		}
		ref, err := url.Parse(strings.TrimSpace(lines[i+1]))
		if err != nil {
			t.Fatal(err)
		}
		code, seg := do(t, http.MethodGet, base.ResolveReference(ref).String(), "")
		if code != http.StatusOK {
			t.Fatalf("GET segment %s: %d", ref, code)
		}
		f.segments[ref.String()] = []byte(seg)
	}
	return f
}

// lastPartOf returns the newest part of a media playlist: its segment's
// media sequence number, its index there, and whether that segment is
// complete (listed with EXTINF).
func lastPartOf(playlist string) (msn, part int64, complete, ok bool) {
	seq := int64(-1)
	var segs, parts int64
	for _, line := range strings.Split(playlist, "\n") {
		switch {
		case strings.HasPrefix(line, "#EXT-X-MEDIA-SEQUENCE:"):
			_, _ = fmt.Sscan(strings.TrimPrefix(line, "#EXT-X-MEDIA-SEQUENCE:"), &seq)
		case strings.HasPrefix(line, "#EXT-X-PART:"):
			parts++
		case strings.HasPrefix(line, "#EXTINF:"):
			segs++
			part, complete = parts-1, parts > 0
			parts = 0
		}
	}
	if seq < 0 {
		return 0, 0, false, false
	}
	if parts > 0 {
		return seq + segs, parts - 1, false, true
	}
	if !complete {
		return 0, 0, false, false
	}
	return seq + segs - 1, part, true, true
}

// emsgCue is a shopcast emsg box of a segment, as mp4ff reads it.
type emsgCue struct {
	presentationTime uint64
	timescale        uint32
	duration         uint32
	wire             map[string]any
}

// emsgCues reads every fragment of seg with github.com/Eyevinn/mp4ff and
// returns the shopcast emsg boxes, keyed by cue id (the END event's under
// "ID/end").
func emsgCues(t *testing.T, seg []byte) map[string]emsgCue {
	t.Helper()
	f, err := mp4.DecodeFile(bytes.NewReader(seg))
	if err != nil {
		t.Fatalf("mp4ff: %v", err)
	}
	out := map[string]emsgCue{}
	for _, s := range f.Segments {
		for _, frag := range s.Fragments {
			for _, e := range frag.Emsgs {
				if e.SchemeIDURI != "https://aomedia.org/emsg/ID3" {
					continue
				}
				frames, err := cues.DecodeID3(e.MessageData)
				if err != nil || len(frames) != 1 || frames[0].Description != cues.ID3Description {
					t.Fatalf("emsg %d: ID3 %v %+v", e.ID, err, frames)
				}
				var w map[string]any
				if err := json.Unmarshal([]byte(frames[0].Value), &w); err != nil {
					t.Fatal(err)
				}
				id, _ := w["id"].(string)
				if end, _ := w["end"].(bool); end {
					id += "/end"
				}
				out[id] = emsgCue{e.PresentationTime, e.TimeScale, e.EventDuration, w}
			}
		}
	}
	return out
}

// strictCheck has hls-parser 0.16.1 in strict mode (npm, pinned in
// package.json, e2e/testdata/hls_strict.mjs) read each playlist and
// returns what it said of each ("" when it accepted one). It skips when
// node or hls-parser is missing outside CI.
func strictCheck(t *testing.T, list []fetched) []string {
	t.Helper()
	missing := func(format string, a ...any) {
		t.Helper()
		msg := fmt.Sprintf(format, a...) + " (make deps installs it)"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("node is not installed: %v", err)
	}
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "node_modules", "hls-parser", "package.json")); err != nil {
		missing("npm hls-parser is not installed: %v", err)
	}
	dir := t.TempDir()
	args := []string{filepath.Join(root, "e2e", "testdata", "hls_strict.mjs"), root}
	for i, f := range list {
		p := filepath.Join(dir, fmt.Sprintf("%02d.m3u8", i))
		if err := os.WriteFile(p, []byte(f.playlist), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, p)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, node, args...).Output()
	if err != nil {
		t.Fatalf("node hls_strict.mjs: %v", err)
	}
	res := make([]string, len(list))
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(list) {
		t.Fatalf("hls_strict.mjs answered %d lines for %d playlists:\n%s", len(lines), len(list), out)
	}
	for i, line := range lines {
		var r struct {
			OK    bool   `json:"ok"`
			Error string `json:"error"`
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("hls_strict.mjs: %q: %v", line, err)
		}
		if !r.OK {
			res[i] = r.Error
			if res[i] == "" {
				res[i] = "refused"
			}
		}
	}
	return res
}

// moduleRoot walks up from the working directory to the directory of
// go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}
