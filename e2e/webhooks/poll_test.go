package webhooks

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shopcast/shopcast/cues"
	"github.com/shopcast/shopcast/internal/e2etest"
	"github.com/shopcast/shopcast/internal/testpub"
	"github.com/shopcast/shopcast/webhooks"
)

// TestE2EWebhooksPollClosed: a poll posted through the cue API on a
// published stream, voted on by two viewers through the signals API (the
// first one twice), closes at its end with a poll.closed that carries the
// audience's counts, signed and delivered once, after the poll's
// cue.started, at the poll's end on the media clock.
func TestE2EWebhooksPollClosed(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	const (
		pollID     = "colour-1"
		durationMs = 3000
		viewerA    = "viewer-aaaaaaaaaaaaaaaa"
		viewerB    = "viewer-bbbbbbbbbbbbbbbb"
	)
	secret := newSecret(t)
	rcv := newReceiver(t, secret, nil)
	cfg := e2etest.Config(t)
	cfg.GracePeriod, cfg.TargetDuration = time.Second, time.Second
	cfg.Webhooks = []webhooks.Endpoint{{URL: rcv.url, Secret: secret}}
	cfg.WebhookBackoffBase = 100 * time.Millisecond
	srv := e2etest.Start(t, cfg)

	// The publisher runs until the poll's result is out, then leaves, so
	// that stream.ended comes after every event of the session.
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	published := make(chan struct{})
	go func() {
		defer close(published)
		_ = testpub.Publish(ctx, srv.RTMP+"/live/shop", fixture, testpub.Options{Loops: 30})
	}()
	defer func() { cancel(); <-published }()
	waitFor(t, 15*time.Second, "the stream to go live", func() bool {
		code, _ := get(t, srv.HTTP+"/live/shop/stream.m3u8")
		return code == http.StatusOK
	})

	code, body := postBody(t, srv.HTTP+"/api/v1/streams/shop/cues",
		`{"v":1,"id":"`+pollID+`","type":"poll","poll":{"question":"Which colour next?",`+
			`"options":["Red","Blue","Green"]},"at":"now","duration_ms":3000}`)
	if code != http.StatusCreated {
		t.Fatalf("POST poll: %d %s", code, body)
	}
	var placed struct {
		MediaTimeMs int64 `json:"media_time_ms"`
	}
	if err := json.Unmarshal([]byte(body), &placed); err != nil {
		t.Fatalf("POST poll answer %s: %v", body, err)
	}

	vote := func(viewer string, option int) (int, string) {
		return postBody(t, srv.HTTP+"/api/v1/streams/shop/signals",
			`{"viewer":"`+viewer+`","kind":"vote","poll":"`+pollID+`","option":`+strconv.Itoa(option)+`}`)
	}
	// A "now" cue opens with the frame it lands on, which may be a moment
	// after its 201: the first vote is sent again until the poll is open.
	waitFor(t, 10*time.Second, "viewer A's vote to be taken", func() bool {
		code, body := vote(viewerA, 0)
		if code == http.StatusConflict && strings.Contains(body, "not open") {
			return false
		}
		if code != http.StatusAccepted {
			t.Fatalf("viewer A's vote: %d %s", code, body)
		}
		return true
	})
	if code, body := vote(viewerB, 2); code != http.StatusAccepted {
		t.Fatalf("viewer B's vote: %d %s", code, body)
	}
	if code, body := vote(viewerA, 1); code != http.StatusConflict || !strings.Contains(body, "already voted") {
		t.Fatalf("viewer A's second vote: %d %s, want 409 already voted", code, body)
	}

	waitFor(t, 30*time.Second, "poll.closed", func() bool { return rcv.has(webhooks.PollClosed) })
	cancel()
	<-published
	waitFor(t, 30*time.Second, "stream.ended", func() bool { return rcv.has(webhooks.StreamEnded) })
	rcv.check()

	got := rcv.delivered()
	t.Logf("delivered %s", types(got))
	var pollStarted, pollEnded, closed []attempt
	for _, a := range got {
		switch {
		case a.msg.Type == webhooks.PollClosed:
			closed = append(closed, a)
		case a.msg.Data.CueID == pollID && a.msg.Type == webhooks.CueStarted:
			pollStarted = append(pollStarted, a)
		case a.msg.Data.CueID == pollID && a.msg.Type == webhooks.CueEnded:
			pollEnded = append(pollEnded, a)
		}
	}
	if len(closed) != 1 || len(pollStarted) != 1 || len(pollEnded) != 1 {
		t.Fatalf("delivered %s: %d poll.closed, %d cue.started and %d cue.ended of %s; want one of each",
			types(got), len(closed), len(pollStarted), len(pollEnded), pollID)
	}
	pc := closed[0]
	if slices.IndexFunc(got, func(a attempt) bool { return a.id == pollStarted[0].id }) >
		slices.IndexFunc(got, func(a attempt) bool { return a.id == pc.id }) {
		t.Errorf("poll.closed arrived before the poll's cue.started: %s", types(got))
	}
	if pc.id == "" || pc.id == pollStarted[0].id {
		t.Errorf("poll.closed webhook-id %q", pc.id)
	}

	var result cues.Cue
	if err := json.Unmarshal(pc.msg.Data.Cue, &result); err != nil {
		t.Fatalf("poll.closed cue %s: %v", pc.msg.Data.Cue, err)
	}
	if pc.msg.Data.Stream != "shop" || pc.msg.Data.CueID != pollID+"-result" ||
		result.Type != webhooks.PollResultType || result.ID != pollID+"-result" || result.PollResult == nil ||
		result.PollResult.Poll != pollID || !slices.Equal(result.PollResult.Options, []string{"Red", "Blue", "Green"}) {
		t.Fatalf("poll.closed data %+v, cue %s", pc.msg.Data, pc.msg.Data.Cue)
	}
	if want := []int64{1, 0, 1}; !slices.Equal(result.PollResult.Counts, want) {
		t.Errorf("poll.closed counts %v, want %v", result.PollResult.Counts, want)
	}

	start, end := pollStarted[0].msg.Data.Start, pollEnded[0].msg.Data.End
	if start == nil || start.MediaMs == nil || end == nil || end.MediaMs == nil {
		t.Fatalf("poll times: cue.started %+v, cue.ended %+v", pollStarted[0].msg.Data, pollEnded[0].msg.Data)
	}
	if *start.MediaMs != placed.MediaTimeMs {
		t.Errorf("cue.started at %d ms, the cue API placed the poll at %d ms", *start.MediaMs, placed.MediaTimeMs)
	}
	pollEnd := *start.MediaMs + durationMs
	if *end.MediaMs != pollEnd {
		t.Errorf("the poll's cue.ended at %d ms, want %d (start + duration)", *end.MediaMs, pollEnd)
	}
	at := pc.msg.Data.Start
	if at == nil || at.MediaMs == nil || *at.MediaMs != pollEnd {
		t.Fatalf("poll.closed start %+v, want media_ms %d (the poll's start %d + %d)", at, pollEnd, *start.MediaMs, durationMs)
	}
	if !pc.msg.Timestamp.Equal(at.Wall) || !at.Wall.Equal(end.Wall) {
		t.Errorf("poll.closed timestamp %v, start wall %v; the poll ended at %v", pc.msg.Timestamp, at.Wall, end.Wall)
	}
}

// postBody POSTs body as JSON and returns the status and the answer.
func postBody(t *testing.T, url, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
