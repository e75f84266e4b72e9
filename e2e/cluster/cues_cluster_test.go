package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"
	"github.com/bluenviron/gohlslib/v2/pkg/playlist"

	"github.com/shopcast/shopcast/internal/e2etest"
	"github.com/shopcast/shopcast/internal/testpub"
)

const cueFixture = "../../testdata/h264_aac.flv"

// cueCluster starts n shopcast servers in this process, each with an
// embedded NATS server routed to the others', and waits until each is
// ready (JetStream has its quorum and the cue store is open).
func cueCluster(t *testing.T, n int) []*e2etest.Server {
	t.Helper()
	var client, route []string
	for range n {
		client = append(client, e2etest.FreeAddr(t))
		route = append(route, e2etest.FreeAddr(t))
	}
	var nodes []*e2etest.Server
	for i := range n {
		cfg := e2etest.Config(t)
		cfg.ClusterNode = fmt.Sprintf("node%d", i+1)
		cfg.ClusterNATSListen = client[i]
		cfg.ClusterRouteListen = route[i]
		cfg.ClusterRoutes = nil
		for j := range n {
			if j != i {
				cfg.ClusterRoutes = append(cfg.ClusterRoutes, "nats://"+route[j])
			}
		}
		nodes = append(nodes, e2etest.Start(t, cfg))
	}
	for i, s := range nodes {
		cueWait(t, 60*time.Second, fmt.Sprintf("node %d ready", i+1), func() bool {
			code, _ := cueGet(t, s.HTTP+"/readyz")
			return code == http.StatusOK
		})
	}
	return nodes
}

func cueGet(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

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

// cueWait polls cond until it holds, failing the test after d.
func cueWait(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition with a deadline
	}
}

// cuePublish publishes the fixture to rtmpURL until the test ends or the
// returned stop is called, connecting again when the server refuses or
// drops it (as OBS's reconnect does).
func cuePublish(t *testing.T, rtmpURL string) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			_ = testpub.Publish(ctx, rtmpURL, cueFixture, testpub.Options{Loops: 1000})
			select {
			case <-ctx.Done():
			case <-time.After(250 * time.Millisecond): // OBS waits before it reconnects
			}
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
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
	if testing.Short() {
		t.Skip("end-to-end")
	}
	nodes := cueCluster(t, 3)
	cuePublish(t, nodes[0].RTMP+"/live/shop")
	base := nodes[0].HTTP + "/live/shop/"
	cueWait(t, 20*time.Second, "the stream on node 1", func() bool {
		code, _ := cueGet(t, base+"index.m3u8")
		return code == http.StatusOK
	})

	// Node 3 knows the stream once node 1 has started it in the cluster.
	var code int
	var body []byte
	cueWait(t, 20*time.Second, "node 3 to accept the cue", func() bool {
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

	cueWait(t, 10*time.Second, "GET on node 2", func() bool {
		code, b := cueGet(t, nodes[1].HTTP+"/api/v1/streams/shop/cues/sneaker-7")
		var got cueAnswer
		return code == http.StatusOK && json.Unmarshal(b, &got) == nil && got == posted
	})

	// Node 1's media playlist lists it, and one of the parts after it
	// carries its emsg at the media time the 201 gave.
	dr := regexp.MustCompile(`#EXT-X-DATERANGE:ID="sneaker-7",CLASS="com.shopcast.product",START-DATE="([^"]+)"`)
	var media []byte
	cueWait(t, 10*time.Second, "the DATERANGE in node 1's playlist", func() bool {
		_, media = cueGet(t, base+"stream.m3u8")
		return dr.Match(media)
	})
	start, err := time.Parse(time.RFC3339Nano, string(dr.FindSubmatch(media)[1]))
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := time.Parse(time.RFC3339Nano, posted.ProgramDateTime); !start.Equal(want) {
		t.Fatalf("START-DATE %v, the 201 said %v", start, want)
	}
	cueWait(t, 15*time.Second, "the cue's emsg in one of node 1's parts", func() bool {
		_, media = cueGet(t, base+"stream.m3u8")
		return cueEmsgIn(t, base, media, "sneaker-7", posted.MediaTimeMs)
	})

	// Node 2 and 3 list it as node 1 placed it; it was placed once.
	for i, n := range nodes {
		code, b := cueGet(t, n.HTTP+"/api/v1/streams/shop/cues")
		if code != http.StatusOK || strings.Count(string(b), `"id":"sneaker-7"`) != 1 {
			t.Errorf("GET on node %d: %d %s", i+1, code, b)
		}
	}
	if n := strings.Count(nodes[0].Log.String(), "queued cue placed"); n != 1 {
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
		code, b := cueGet(t, base+uri)
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
	if testing.Short() {
		t.Skip("end-to-end")
	}
	nodes := cueCluster(t, 3)
	stop1 := cuePublish(t, nodes[0].RTMP+"/live/shop")
	cueWait(t, 20*time.Second, "the stream on node 1", func() bool {
		code, _ := cueGet(t, nodes[0].HTTP+"/live/shop/index.m3u8")
		return code == http.StatusOK
	})
	var code int
	var body []byte
	cueWait(t, 20*time.Second, "node 3 to accept the cue", func() bool {
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

	// Node 1 dies: its NATS member and connection go at once, without a
	// drain, as in a crash (then the rest of it stops); its lease runs
	// out and the publisher moves to node 2.
	nodes[0].Server.Cluster().Kill()
	stop1()
	if err := nodes[0].Stop(); err != nil {
		t.Fatal(err)
	}
	cuePublish(t, nodes[1].RTMP+"/live/shop")
	base := nodes[1].HTTP + "/live/shop/"
	var media []byte
	cueWait(t, 30*time.Second, "both cues in node 2's playlist", func() bool {
		_, media = cueGet(t, base+"stream.m3u8")
		return bytes.Contains(media, []byte(`#EXT-X-DATERANGE:ID="keep"`)) && bytes.Contains(media, []byte(`#EXT-X-DATERANGE:ID="later"`))
	})
	wantLater := regexp.MustCompile(`#EXT-X-DATERANGE:ID="later",CLASS="com.shopcast.product",START-DATE="` +
		regexp.QuoteMeta(later.Format("2006-01-02T15:04:05.000Z")) + `"`)
	if !wantLater.Match(media) {
		t.Fatalf("the scheduled cue moved: want START-DATE %s in\n%s", later.Format(time.RFC3339Nano), media)
	}
	cueWait(t, 15*time.Second, "the active cue's emsg in node 2's parts", func() bool {
		_, media = cueGet(t, base+"stream.m3u8")
		return cueEmsgIn(t, base, media, "keep", -1)
	})
	for _, c := range []struct {
		id   string
		want cueAnswer
	}{{"keep", active}, {"later", scheduled}} {
		code, b := cueGet(t, nodes[2].HTTP+"/api/v1/streams/shop/cues/"+c.id)
		var got cueAnswer
		if code != http.StatusOK || json.Unmarshal(b, &got) != nil || got.State != c.want.State || got.ProgramDateTime != c.want.ProgramDateTime {
			t.Errorf("GET %s on node 3 after the failover: %d %s, before: %+v", c.id, code, b, c.want)
		}
	}
}
