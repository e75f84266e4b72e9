package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/shopcast/shopcast/cues"
	"github.com/shopcast/shopcast/ingest"
	"github.com/shopcast/shopcast/internal/testpub"
	"github.com/shopcast/shopcast/origin"
	"github.com/shopcast/shopcast/packager"
)

const fixture = "../testdata/h264_aac.flv" // 4 s, H.264 + AAC

// rig is the pipeline built in-process as cmd/shopcast builds it: RTMP
// ingest into the packager, the origin serving it with the cue API and
// /metrics mounted, all on loopback.
type rig struct {
	http string // http://127.0.0.1:PORT
	rtmp string // rtmp://127.0.0.1:PORT
}

func newRig(t *testing.T) *rig {
	t.Helper()
	discard := slog.New(slog.DiscardHandler)
	mgr := packager.New(packager.Config{}, discard)
	t.Cleanup(mgr.Close)
	store, err := cues.OpenStore(t.TempDir() + "/cues.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })

	met := &Metrics{Packager: mgr, Cues: store}
	api := &cues.API{Service: &cues.Service{Store: store, Timeline: mgr, Logger: discard}, Logger: discard, Observer: met}
	org := &origin.Server{Address: "127.0.0.1:0", Source: mgr, Observer: met}
	org.Handle("/api/v1/", api)
	org.Handle("GET /metrics", met.Handler())
	if err := org.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = org.Shutdown(ctx)
	})
	rtmp := &ingest.RTMPServer{Address: "127.0.0.1:0", Sink: mgr, Logger: discard}
	if err := rtmp.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rtmp.Close)
	return &rig{http: "http://" + org.Addr().String(), rtmp: "rtmp://" + rtmp.Addr().String()}
}

// do sends a request as a viewer with User-Agent ua and returns the status
// and body.
func do(ctx context.Context, method, url, ua, body string, hdr ...string) (int, string, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("User-Agent", ua)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// scrape reads /metrics as Prometheus does, parsed by Prometheus's own text
// parser.
func (r *rig) scrape(t *testing.T) families {
	t.Helper()
	status, body, err := do(context.Background(), "GET", r.http+"/metrics", "prometheus", "")
	if err != nil || status != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", status, err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, body)
	}
	return fams
}

type families map[string]*dto.MetricFamily

// value returns the value of the sample of family name whose labels include
// the given name/value pairs (a histogram's sample count), or 0 without one.
func (f families) value(name string, labels ...string) float64 {
	fam := f[name]
	if fam == nil {
		return 0
	}
next:
	for _, m := range fam.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return 0
}

// eventually scrapes until cond holds on the metrics, or fails at the
// deadline. The server's state changes on its own as media flows: polling
// it is the only way to watch it.
func (r *rig) eventually(t *testing.T, d time.Duration, what string, cond func(families) bool) families {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		f := r.scrape(t)
		if cond(f) {
			return f
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

const cueJSON = `{"v":1,"id":"%s","type":"product","product":{"sku":"SNK-42","title":"Court Sneaker",` +
	`"price":{"amount":"89.90","currency":"EUR"},"image_url":"https://cdn.example.com/a.jpg","url":"https://shop.example.com/p/42"},"at":"now","duration_ms":60000}`

var segRE = regexp.MustCompile(`seg(\d+)\.m4s`)

func TestMetricsMoveAsAStreamRuns(t *testing.T) {
	r := newRig(t)
	const stream = "shop1"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pubDone := make(chan error, 1)
	go func() {
		pubDone <- testpub.Publish(ctx, r.rtmp+"/live/"+stream, fixture, testpub.Options{Loops: 3, Speed: 2})
	}()

	// Parts are produced, and keep being produced.
	f := r.eventually(t, 15*time.Second, "a first part", func(f families) bool {
		return f.value("shopcast_parts_total", "stream", stream) > 0
	})
	first := f.value("shopcast_parts_total", "stream", stream)
	f = r.eventually(t, 15*time.Second, "more parts", func(f families) bool {
		return f.value("shopcast_parts_total", "stream", stream) > first
	})
	for _, c := range []struct{ name, track string }{
		{"shopcast_ingest_bytes_total", "video"}, {"shopcast_ingest_bytes_total", "audio"},
		{"shopcast_ingest_frames_total", "video"}, {"shopcast_ingest_frames_total", "audio"},
	} {
		if v := f.value(c.name, "stream", stream, "track", c.track); v <= 0 {
			t.Errorf("%s{track=%q} = %v, want > 0", c.name, c.track, v)
		}
	}
	if v := f.value("shopcast_publisher_connects_total", "stream", stream); v != 1 {
		t.Errorf("publisher connects = %v, want 1", v)
	}
	if v := f.value("shopcast_publish_to_deliverable_seconds", "stream", stream); v <= 0 {
		t.Errorf("publish-to-deliverable observations = %v, want > 0", v)
	}
	if v := f.value("shopcast_streams"); v != 1 {
		t.Errorf("streams = %v, want 1", v)
	}
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if f[name] == nil {
			t.Errorf("%s missing: Go runtime and process collectors are not registered", name)
		}
	}

	// Playlist requests are counted by kind and status; three distinct
	// players (User-Agents) are three viewers.
	base := r.http + "/live/" + stream + "/"
	_, media, err := do(ctx, "GET", base+"stream.m3u8", "viewer-1", "")
	if err != nil {
		t.Fatal(err)
	}
	m := segRE.FindAllStringSubmatch(media, -1)
	if len(m) == 0 {
		t.Fatalf("no segment in the media playlist:\n%s", media)
	}
	lastMSN, _ := strconv.Atoi(m[len(m)-1][1])
	requests := []struct {
		path, ua string
		status   int
		kind     string
	}{
		{"index.m3u8", "viewer-1", 200, "multivariant"},
		{"index.m3u8", "viewer-2", 200, "multivariant"},
		{"stream.m3u8", "viewer-2", 200, "plain"},
		{"stream.m3u8?_HLS_skip=YES", "viewer-3", 200, "delta"},
		{fmt.Sprintf("stream.m3u8?_HLS_msn=%d", lastMSN), "viewer-3", 200, "blocking"},
		{fmt.Sprintf("stream.m3u8?_HLS_msn=%d&_HLS_skip=YES", lastMSN), "viewer-1", 200, "blocking_delta"},
		{"stream.m3u8?_HLS_msn=999999", "viewer-4", 400, "blocking"},
		{"stream.m3u8?_HLS_msn=abc", "viewer-4", 400, "blocking"},
		{"../nope/index.m3u8", "viewer-5", 404, "multivariant"},
	}
	want := map[[2]string]float64{{"plain", "200"}: 1} // the request above
	for _, rq := range requests {
		status, _, err := do(ctx, "GET", base+rq.path, rq.ua, "")
		if err != nil || status != rq.status {
			t.Fatalf("GET %s: %d %v, want %d", rq.path, status, err, rq.status)
		}
		want[[2]string{rq.kind, strconv.Itoa(rq.status)}]++
	}
	f = r.scrape(t)
	for k, n := range want {
		if got := f.value("shopcast_playlist_requests_total", "kind", k[0], "status", k[1]); got != n {
			t.Errorf("playlist requests{kind=%q,status=%q} = %v, want %v", k[0], k[1], got, n)
		}
	}
	// viewer-4 and viewer-5 only got errors: they are not watching.
	if v := f.value("shopcast_viewers", "stream", stream); v != 3 {
		t.Errorf("viewers = %v, want 3 (distinct clients that loaded a playlist)", v)
	}

	// Cues: posted, active, rejected by reason.
	posts := []struct {
		name, path, body string
		hdr              []string
		status           int
		reason           string // "" for posted
	}{
		{"valid", stream, fmt.Sprintf(cueJSON, "c1"), nil, 201, ""},
		{"id reused by another cue", stream, strings.Replace(fmt.Sprintf(cueJSON, "c1"), "Court", "Trail", 1), nil, 409, "id_used"},
		{"not JSON", stream, "{", nil, 400, "invalid"},
		{"unknown stream", "nope", fmt.Sprintf(cueJSON, "c2"), nil, 404, "unknown_stream"},
		{"through a proxy without token", stream, fmt.Sprintf(cueJSON, "c3"), []string{"X-Forwarded-For", "192.0.2.1"}, 403, "unauthorized"},
	}
	for _, p := range posts {
		status, body, err := do(ctx, "POST", r.http+"/api/v1/streams/"+p.path+"/cues", "studio", p.body, p.hdr...)
		if err != nil || status != p.status {
			t.Fatalf("%s: POST cue: %d %v %s, want %d", p.name, status, err, body, p.status)
		}
	}
	f = r.eventually(t, 5*time.Second, "the cue to be active", func(f families) bool {
		return f.value("shopcast_cues_active", "stream", stream) == 1
	})
	if v := f.value("shopcast_cues_posted_total", "stream", stream); v != 1 {
		t.Errorf("cues posted = %v, want 1", v)
	}
	for _, p := range posts {
		if p.reason == "" {
			continue
		}
		if v := f.value("shopcast_cues_rejected_total", "reason", p.reason); v != 1 {
			t.Errorf("%s: cues rejected{reason=%q} = %v, want 1", p.name, p.reason, v)
		}
	}

	// The publisher leaves: a disconnect. A player then blocks on the next
	// segment, which will not come before it gives up.
	if err := <-pubDone; err != nil {
		t.Fatalf("publish: %v", err)
	}
	r.eventually(t, 10*time.Second, "the disconnect", func(f families) bool {
		return f.value("shopcast_publisher_disconnects_total", "stream", stream) == 1
	})
	_, media, err = do(ctx, "GET", base+"stream.m3u8", "viewer-1", "")
	if err != nil {
		t.Fatal(err)
	}
	m = segRE.FindAllStringSubmatch(media, -1)
	lastMSN, _ = strconv.Atoi(m[len(m)-1][1])
	bctx, bcancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, _, err := do(bctx, "GET", fmt.Sprintf("%sstream.m3u8?_HLS_msn=%d", base, lastMSN+1), "viewer-6", "")
		if !errors.Is(err, context.Canceled) {
			t.Errorf("blocked request: %v, want it cancelled", err)
		}
	}()
	r.eventually(t, 5*time.Second, "one blocked request", func(f families) bool {
		return f.value("shopcast_blocked_requests", "stream", stream) == 1
	})
	bcancel()
	wg.Wait()
	f = r.eventually(t, 5*time.Second, "the blocked request to leave", func(f families) bool {
		return f.value("shopcast_blocked_requests", "stream", stream) == 0 &&
			f.value("shopcast_playlist_requests_total", "kind", "blocking", "status", "499") == 1
	})
	if v := f.value("shopcast_viewers", "stream", stream); v != 3 {
		t.Errorf("viewers = %v after a cancelled request, want still 3", v)
	}
}
