package live

import (
	"context"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/shopcast/shopcast/internal/e2etest"
	"github.com/shopcast/shopcast/internal/testpub"
)

// TestE2EMetrics scrapes the binary's /metrics while a stream runs: the
// parts counter of the stream moves, and /readyz and /healthz answer.
func TestE2EMetrics(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	srv := startServer(t)
	if code, _, _ := e2etest.Get(t, srv.HTTP+"/readyz"); code != 200 {
		t.Fatalf("/readyz: %d", code)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	go func() { _ = testpub.Publish(ctx, srv.RTMP+"/live/met", fixture, testpub.Options{Loops: 3}) }()
	parts := func() float64 {
		_, body, _ := e2etest.Get(t, srv.HTTP+"/metrics")
		m := regexp.MustCompile(`(?m)^shopcast_parts_total\{stream="met"\} (\S+)$`).FindSubmatch(body)
		if m == nil {
			return 0
		}
		v, _ := strconv.ParseFloat(string(m[1]), 64)
		return v
	}
	e2etest.WaitUntil(t, 20*time.Second, "parts to be counted", func() bool { return parts() > 0 })
	first := parts()
	e2etest.WaitUntil(t, 10*time.Second, "the parts counter to move", func() bool { return parts() > first })
	_, body, _ := e2etest.Get(t, srv.HTTP+"/metrics")
	for _, want := range []string{"shopcast_publish_to_deliverable_seconds_bucket", "go_goroutines", "process_resident_memory_bytes", `shopcast_ingest_frames_total{stream="met",track="video"}`} {
		if !regexp.MustCompile(regexp.QuoteMeta(want)).Match(body) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
