package webhooks

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shopcast/shopcast/cues"
	"github.com/shopcast/shopcast/internal/e2etest"
	"github.com/shopcast/shopcast/internal/testpub"
	"github.com/shopcast/shopcast/webhooks"
)

// TestE2EWebhooks: a publisher's stream with a posted cue reaches the
// shop as stream.started, cue.started, cue.ended, stream.ended and
// recording.ready, each signed and delivered once, in order, though the
// receiver answers the first event 500 twice.
func TestE2EWebhooks(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	secret := newSecret(t)
	rcv := newReceiver(t, secret, func(n int, _ attempt) int {
		if n < 2 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	cfg := e2etest.Config(t)
	cfg.GracePeriod, cfg.TargetDuration = time.Second, time.Second
	cfg.Webhooks = []webhooks.Endpoint{{URL: rcv.url, Secret: secret}}
	cfg.WebhookBackoffBase = 100 * time.Millisecond
	srv := e2etest.Start(t, cfg)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	published := make(chan error, 1)
	go func() { published <- testpub.Publish(ctx, srv.RTMP+"/live/shop", fixture, testpub.Options{Loops: 2}) }()
	waitFor(t, 15*time.Second, "the stream to go live", func() bool {
		code, _ := get(t, srv.HTTP+"/live/shop/stream.m3u8")
		return code == http.StatusOK
	})
	if code := post(t, srv.HTTP+"/api/v1/streams/shop/cues", cueJSON("mug-1", 1500)); code != http.StatusCreated {
		t.Fatalf("POST cue: %d", code)
	}
	if err := <-published; err != nil {
		t.Fatalf("publish: %v", err)
	}
	waitFor(t, 60*time.Second, "recording.ready", func() bool { return rcv.has(webhooks.RecordingReady) })
	rcv.check()

	got := rcv.delivered()
	if want := "stream.started cue.started cue.ended stream.ended recording.ready"; types(got) != want {
		t.Fatalf("delivered %s, want %s", types(got), want)
	}
	// The first event: two 500s then 200, the same webhook-id each time.
	all := rcv.all()
	if len(all) != 7 || all[0].id != got[0].id || all[1].id != got[0].id || all[2].id != got[0].id ||
		all[0].status != 500 || all[1].status != 500 {
		for _, a := range all {
			t.Logf("%s %s %d", a.id, a.msg.Type, a.status)
		}
		t.Fatalf("%d attempts; want 500, 500, 200 for stream.started, then one per event", len(all))
	}
	for _, a := range got {
		if a.msg.Data.Stream != "shop" || a.msg.Timestamp.IsZero() {
			t.Errorf("%s: data %+v", a.msg.Type, a.msg)
		}
	}
	started, ended := got[1].msg.Data, got[2].msg.Data
	var cue cues.Cue
	if err := json.Unmarshal(started.Cue, &cue); err != nil || cue.ID != "mug-1" || cue.Product == nil || cue.Product.SKU != "MUG-1" {
		t.Errorf("cue.started cue %s (%v)", started.Cue, err)
	}
	if started.CueID != "mug-1" || started.Start == nil || started.Start.MediaMs == nil || ended.End == nil || ended.End.MediaMs == nil {
		t.Fatalf("cue times: started %+v, ended %+v", started, ended)
	}
	if d := *ended.End.MediaMs - *started.Start.MediaMs; d != 1500 {
		t.Errorf("cue.ended %d ms after cue.started on the media clock, want 1500", d)
	}
	if ended.Session != started.Session || got[3].msg.Data.Session != started.Session {
		t.Errorf("sessions differ: %d, %d, %d", started.Session, ended.Session, got[3].msg.Data.Session)
	}
	rec := got[4].msg.Data
	if code, body := get(t, srv.HTTP+rec.RecordingURL); code != http.StatusOK || !strings.Contains(body, "#EXTM3U") {
		t.Errorf("recording.ready %s: GET %s: %d", rec.RecordingID, rec.RecordingURL, code)
	}

	// The receiver answers before shopcast counts the answer.
	var page string
	waitFor(t, 10*time.Second, "the outbox to empty", func() bool {
		_, page = get(t, srv.HTTP+"/metrics")
		return metric(page, "shopcast_webhook_outbox") == 0
	})
	for series, want := range map[string]float64{
		`shopcast_webhook_deliveries_total{outcome="delivered"}`: 5,
		`shopcast_webhook_deliveries_total{outcome="retried"}`:   2,
		`shopcast_webhook_deliveries_total{outcome="failed"}`:    0,
		`shopcast_webhook_deliveries_total{outcome="dropped"}`:   0,
		`shopcast_webhook_outbox`:                                0,
	} {
		if got := metric(page, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	if strings.Contains(srv.Log.String(), strings.TrimPrefix(secret, "whsec_")) {
		t.Error("the secret is in the server log")
	}
}
