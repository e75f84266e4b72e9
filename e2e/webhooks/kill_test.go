package webhooks

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shopcast/shopcast/internal/e2etest"
	"github.com/shopcast/shopcast/internal/testpub"
	"github.com/shopcast/shopcast/webhooks"
)

// TestE2EWebhooksKill9 runs the shopcast binary with a receiver that
// refuses everything, kills it with SIGKILL once its outbox holds the
// stream's events, and restarts it on the same files with the receiver
// accepting: every event is delivered after the restart, once, in order,
// the one refused before the kill with the same webhook-id.
// shopcastBinary builds cmd/shopcast once for the package.
var shopcastBinary e2etest.Builder

func TestE2EWebhooksKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the shopcast binary")
	}
	dir := t.TempDir()
	bin := shopcastBinary.Path(t)
	secret := newSecret(t)
	rcv := newReceiver(t, secret, func(int, attempt) int { return http.StatusServiceUnavailable })
	endpoints, err := json.Marshal([]webhooks.Endpoint{{URL: rcv.url, Secret: secret}})
	if err != nil {
		t.Fatal(err)
	}
	// Both processes run on the same cue store, hence on the same outbox
	// next to it.
	conf := e2etest.ProcessConfig{Keys: map[string]string{
		"cue_store":            filepath.Join(dir, "cues.db"),
		"webhooks":             string(endpoints),
		"webhook_attempts":     "1000",
		"webhook_backoff_base": "100ms",
		"webhook_backoff_max":  "500ms",
	}}

	a := e2etest.StartProcess(t, bin, conf)
	ctx, cancel := context.WithCancel(context.Background())
	published := make(chan struct{})
	go func() {
		defer close(published)
		_ = testpub.Publish(ctx, a.RTMP+"/live/shop", fixture, testpub.Options{Loops: 100})
	}()
	defer func() { cancel(); <-published }()
	waitFor(t, 20*time.Second, "the stream to go live", func() bool {
		code, _ := get(t, a.HTTP+"/live/shop/stream.m3u8")
		return code == http.StatusOK
	})
	if code := post(t, a.HTTP+"/api/v1/streams/shop/cues", cueJSON("mug-1", 500)); code != http.StatusCreated {
		t.Fatalf("POST cue: %d", code)
	}
	// stream.started is refused again and again; the cue's start and end
	// wait behind it in the outbox.
	waitFor(t, 20*time.Second, "three events in the outbox and refused attempts", func() bool {
		_, page := get(t, a.HTTP+"/metrics")
		return metric(page, "shopcast_webhook_outbox") >= 3 && len(rcv.all()) >= 2
	})
	refused := rcv.all()
	a.Kill()
	cancel()
	<-published

	rcv.setAnswer(nil)
	b := e2etest.StartProcess(t, bin, conf)
	waitFor(t, 30*time.Second, "the events after the restart", func() bool {
		return rcv.has(webhooks.CueEnded) && rcv.has(webhooks.RecordingReady)
	})
	rcv.check()
	got := rcv.delivered()
	// The recording the kill left open is closed, and announced, by the
	// restart.
	if want := "stream.started cue.started cue.ended recording.ready"; types(got) != want {
		t.Fatalf("delivered %s, want %s", types(got), want)
	}
	for _, r := range refused {
		if r.id != got[0].id || r.msg.Type != webhooks.StreamStarted {
			t.Errorf("refused before the kill: %s %s; delivered first after it: %s", r.id, r.msg.Type, got[0].id)
		}
	}
	if got[1].msg.Data.CueID != "mug-1" || got[2].msg.Data.CueID != "mug-1" {
		t.Errorf("cue events for %q and %q", got[1].msg.Data.CueID, got[2].msg.Data.CueID)
	}
	waitFor(t, 10*time.Second, "the outbox to empty", func() bool {
		_, page := get(t, b.HTTP+"/metrics")
		return metric(page, "shopcast_webhook_outbox") == 0
	})
	for _, p := range []*e2etest.Process{a, b} {
		if strings.Contains(p.Log.String(), strings.TrimPrefix(secret, "whsec_")) {
			t.Error("the secret is in shopcast's log")
		}
	}
}
