package cluster

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"
	"github.com/bluenviron/gohlslib/v2/pkg/playlist"

	"github.com/shopcast/shopcast/internal/e2etest"
)

// cuePost POSTs body to url and returns the status and body.
func cuePost(t *testing.T, url string, body []byte) (int, []byte) {
	t.Helper()
	resp, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// cueJSON is testdata/cues_example.json with another id, "at" now and a
// duration.
func cueJSON(t *testing.T, id string, durMs int) []byte {
	t.Helper()
	b, err := os.ReadFile("../../testdata/cues_example.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	doc["id"], doc["at"], doc["duration_ms"] = id, "now", durMs
	out, _ := json.Marshal(doc)
	return out
}

type cueAnswer struct {
	State           string `json:"state"`
	MediaTimeMs     int64  `json:"media_time_ms"`
	ProgramDateTime string `json:"program_date_time"`
}

// TestClusterCueOnOtherNode publishes to node 1 and posts a cue to node 3:
// node 1 (the owner) places it, once, in its playlist (EXT-X-DATERANGE)
// and its parts (an emsg, read by mp4ff) at the media time the 201 names;
// GET on node 2 shows the same cue at the same time.
func TestClusterCueOnOtherNode(t *testing.T) {
	nodes := startCluster(t, member{}, member{}, member{})
	publish(t, t.Context(), nodes[0], "shop")
	base := nodes[0].HTTP + "/live/shop/"

	// Node 3 knows the stream once node 1 has started it in the cluster.
	var code int
	var body []byte
	e2etest.WaitUntil(t, 20*time.Second, "node 3 to accept the cue", func() bool {
		code, body = cuePost(t, nodes[2].HTTP+"/api/v1/streams/shop/cues", cueJSON(t, "sneaker-7", 60000))
		return code != http.StatusNotFound
	})
	if code != http.StatusCreated {
		t.Fatalf("POST on node 3: %d %s", code, body)
	}
	var posted cueAnswer
	if err := json.Unmarshal(body, &posted); err != nil {
		t.Fatal(err)
	}
	if posted.State != "active" || posted.ProgramDateTime == "" {
		t.Fatalf("POST on node 3 answered %s", body)
	}

	e2etest.WaitUntil(t, 10*time.Second, "GET on node 2", func() bool {
		code, b, _ := tryGet(nodes[1].HTTP + "/api/v1/streams/shop/cues/sneaker-7")
		var got cueAnswer
		return code == http.StatusOK && json.Unmarshal(b, &got) == nil && got == posted
	})

	// Node 1's media playlist lists it, and one of the parts after it
	// carries its emsg at the media time the 201 gave.
	dr := regexp.MustCompile(`#EXT-X-DATERANGE:ID="sneaker-7",CLASS="com.shopcast.product",START-DATE="([^"]+)"`)
	var media []byte
	e2etest.WaitUntil(t, 10*time.Second, "the DATERANGE in node 1's playlist", func() bool {
		_, media, _ = tryGet(base + "stream.m3u8")
		return dr.Match(media)
	})
	start, err := time.Parse(time.RFC3339Nano, string(dr.FindSubmatch(media)[1]))
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := time.Parse(time.RFC3339Nano, posted.ProgramDateTime); !start.Equal(want) {
		t.Fatalf("START-DATE %v, the 201 said %v", start, want)
	}
	e2etest.WaitUntil(t, 15*time.Second, "the cue's emsg in one of node 1's parts", func() bool {
		_, media, _ = tryGet(base + "stream.m3u8")
		return cueEmsgIn(t, base, media, "sneaker-7", posted.MediaTimeMs)
	})

	// Node 2 and 3 list it as node 1 placed it; it was placed once.
	for i, n := range nodes {
		code, b, _ := tryGet(n.HTTP + "/api/v1/streams/shop/cues")
		if code != http.StatusOK || strings.Count(string(b), `"id":"sneaker-7"`) != 1 {
			t.Errorf("GET on node %d: %d %s", i+1, code, b)
		}
	}
	if n := strings.Count(nodes[0].log.String(), "queued cue placed"); n != 1 {
		t.Errorf("node 1 logged %d placements of the queued cue", n)
	}
}

// cueEmsgIn reports whether a part of the media playlist carries the start
// emsg of cue id at mediaMs (within 1 ms; any time when mediaMs < 0).
func cueEmsgIn(t *testing.T, base string, media []byte, id string, mediaMs int64) bool {
	t.Helper()
	pl, err := playlist.Unmarshal(media)
	if err != nil {
		t.Fatalf("node 1's playlist: %v", err)
	}
	m, ok := pl.(*playlist.Media)
	if !ok {
		t.Fatalf("not a media playlist: %T", pl)
	}
	var uris []string
	for _, seg := range m.Segments {
		for _, p := range seg.Parts {
			uris = append(uris, p.URI)
		}
	}
	for _, p := range m.Parts {
		uris = append(uris, p.URI)
	}
	for _, uri := range uris {
		code, b, _ := tryGet(base + uri)
		if code != http.StatusOK {
			continue
		}
		f, err := mp4.DecodeFile(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("part %s: mp4ff: %v", uri, err)
		}
		for _, seg := range f.Segments {
			for _, frag := range seg.Fragments {
				for _, e := range frag.Emsgs {
					if e.SchemeIDURI != "https://aomedia.org/emsg/ID3" || !bytes.Contains(e.MessageData, []byte(`"id":"`+id+`"`)) ||
						bytes.Contains(e.MessageData, []byte(`"end":true`)) {
						continue
					}
					ms := int64(e.PresentationTime) * 1000 / int64(e.TimeScale)
					if d := ms - mediaMs; mediaMs >= 0 && (d < -1 || d > 1) {
						t.Fatalf("part %s: the emsg is at %d ms, the 201 said %d", uri, ms, mediaMs)
					}
					return true
				}
			}
		}
	}
	return false
}

// TestClusterCuesSurviveFailover: cues placed while node 1 owned the
// stream are there after node 1 stops and the publisher moves to node 2:
// the active cue is active in node 2's playlist and parts (sent again for
// the rest of its duration, same id), the scheduled one keeps the
// program date-time node 1 resolved, and GET on node 3 shows both as they
// were recorded.
func TestClusterCuesSurviveFailover(t *testing.T) {
	nodes := startCluster(t, member{process: true}, member{}, member{})
	f := publish(t, t.Context(), nodes[0], "shop")
	var code int
	var body []byte
	e2etest.WaitUntil(t, 20*time.Second, "node 3 to accept the cue", func() bool {
		code, body = cuePost(t, nodes[2].HTTP+"/api/v1/streams/shop/cues", cueJSON(t, "keep", 300000))
		return code != http.StatusNotFound
	})
	if code != http.StatusCreated {
		t.Fatalf("POST on node 3: %d %s", code, body)
	}
	var active cueAnswer
	_ = json.Unmarshal(body, &active)
	later := time.Now().Add(90 * time.Second).UTC().Truncate(time.Millisecond)
	doc := cueJSON(t, "later", 10000)
	var m map[string]any
	_ = json.Unmarshal(doc, &m)
	m["at"] = later.Format(time.RFC3339Nano)
	doc, _ = json.Marshal(m)
	code, body = cuePost(t, nodes[1].HTTP+"/api/v1/streams/shop/cues", doc)
	var scheduled cueAnswer
	if code != http.StatusCreated || json.Unmarshal(body, &scheduled) != nil || scheduled.State != "scheduled" {
		t.Fatalf("scheduled POST on node 2: %d %s", code, body)
	}

	// kill -9 node 1 (a process); its lease runs out and the publisher
	// reconnects to node 2, as OBS does to the next server of its list.
	nodes[0].kill()
	select {
	case <-f.done:
	case <-time.After(10 * time.Second):
		_ = f.cmd.Process.Kill()
		<-f.done
	}
	cueReconnect(t, nodes[1], "shop")
	base := nodes[1].HTTP + "/live/shop/"
	var media []byte
	e2etest.WaitUntil(t, 30*time.Second, "both cues in node 2's playlist", func() bool {
		_, media, _ = tryGet(base + "stream.m3u8")
		return bytes.Contains(media, []byte(`#EXT-X-DATERANGE:ID="keep"`)) && bytes.Contains(media, []byte(`#EXT-X-DATERANGE:ID="later"`))
	})
	// Node 2 puts it back at the program date-time node 1 resolved; its
	// packager lands that time on a frame of its own stream (another
	// publisher session, other frames), so within a few frames of it,
	// not at the time first asked for anew.
	m2 := regexp.MustCompile(`#EXT-X-DATERANGE:ID="later",CLASS="com.shopcast.product",START-DATE="([^"]+)"`).FindSubmatch(media)
	recorded, err := time.Parse(time.RFC3339Nano, scheduled.ProgramDateTime)
	if err != nil {
		t.Fatal(err)
	}
	got, err := time.Parse(time.RFC3339Nano, string(m2[1]))
	if err != nil {
		t.Fatal(err)
	}
	if d := got.Sub(recorded); d < -100*time.Millisecond || d > 100*time.Millisecond {
		t.Fatalf("the scheduled cue moved: node 2 starts it at %s, node 1 resolved %s (asked %s)",
			got.Format(time.RFC3339Nano), scheduled.ProgramDateTime, later.Format(time.RFC3339Nano))
	}
	e2etest.WaitUntil(t, 15*time.Second, "the active cue's emsg in node 2's parts", func() bool {
		_, media, _ = tryGet(base + "stream.m3u8")
		return cueEmsgIn(t, base, media, "keep", -1)
	})
	for _, c := range []struct {
		id   string
		want cueAnswer
	}{{"keep", active}, {"later", scheduled}} {
		code, b, _ := tryGet(nodes[2].HTTP + "/api/v1/streams/shop/cues/" + c.id)
		var got cueAnswer
		if code != http.StatusOK || json.Unmarshal(b, &got) != nil || got.State != c.want.State || got.ProgramDateTime != c.want.ProgramDateTime {
			t.Errorf("GET %s on node 3 after the failover: %d %s, before: %+v", c.id, code, b, c.want)
		}
	}
}

// cueReconnect publishes to n as OBS reconnects: ffmpeg again whenever the
// last one exited (refused while the dead owner's lease lasts), until the
// stream is on n.
func cueReconnect(t *testing.T, n *node, name string) {
	t.Helper()
	f := startFFmpeg(t, t.Context(), n.RTMP+"/live/"+name)
	e2etest.WaitUntil(t, 60*time.Second, "the stream on "+n.name, func() bool {
		select {
		case <-f.done:
			f = startFFmpeg(t, t.Context(), n.RTMP+"/live/"+name)
		default:
		}
		code, _, _ := tryGet(n.HTTP + "/live/" + name + "/stream.m3u8")
		return code == http.StatusOK
	})
}
