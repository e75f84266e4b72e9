package moments

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/shopcast/shopcast/cues"
	"github.com/shopcast/shopcast/internal/e2etest"
)

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
		msn, part, complete, ok := e2etest.LastPart(body)
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
		if _, _, complete, _ := e2etest.LastPart(body); !complete {
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
