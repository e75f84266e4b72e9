package webhooks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/shopcast/shopcast/cues"
	"github.com/shopcast/shopcast/packager"
)

// testSecret is the secret of the Standard Webhooks test vectors.
const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

func TestSignVectors(t *testing.T) {
	// The vector every Standard Webhooks library tests against
	// (libraries/go/webhook_test.go, TestWebhookSign; the same in the
	// JavaScript and Python ones).
	key, err := decodeSecret(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	got := Sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, []byte(`{"test": 2432232314}`))
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Errorf("signature %s, want %s", got, want)
	}
	// And the library's own signature of other messages agrees.
	wh, err := standardwebhooks.NewWebhook(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{``, `{}`, `{"type":"stream.started","data":{"stream":"ü"}}`} {
		ts := time.Unix(1700000000, 0)
		want, _ := wh.Sign("msg_1", ts, []byte(body))
		if got := Sign(key, "msg_1", ts.Unix(), []byte(body)); got != want {
			t.Errorf("body %q: %s, library %s", body, got, want)
		}
	}
}

func TestEndpointValidate(t *testing.T) {
	tests := []struct {
		name string
		ep   Endpoint
		want string // in the error; "" for none
	}{
		{"ok", Endpoint{URL: "https://shop.example/hooks", Secret: testSecret}, ""},
		{"ok filter", Endpoint{URL: "http://127.0.0.1:9/h", Secret: testSecret, Events: []string{CueStarted, PollClosed}}, ""},
		{"scheme", Endpoint{URL: "ftp://shop.example/", Secret: testSecret}, "not an http"},
		{"no host", Endpoint{URL: "https:///x", Secret: testSecret}, "not an http"},
		{"no prefix", Endpoint{URL: "https://a/", Secret: "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, `"whsec_"`},
		{"not base64", Endpoint{URL: "https://a/", Secret: "whsec_***"}, "base64"},
		{"short", Endpoint{URL: "https://a/", Secret: "whsec_c2hvcnQ="}, "not between 24 and 64"},
		{"unknown event", Endpoint{URL: "https://a/", Secret: testSecret, Events: []string{"cue.moved"}}, `"cue.moved"`},
		{"password redacted", Endpoint{URL: "https://u:hunter2@a/", Secret: "whsec_x"}, "u:xxxxx@a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.ep.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error %v, want one with %q", err, tt.want)
			}
			if err != nil && (strings.Contains(err.Error(), "MfKQ9r8") || strings.Contains(err.Error(), "hunter2")) {
				t.Errorf("error shows a secret: %v", err)
			}
		})
	}
}

// received is one request a receiver got.
type received struct {
	id, typ, stream string
	status          int
	msg             Message
}

// receiver is an endpoint that checks every signature with the Standard
// Webhooks library and answers the statuses it is told, 200 after them.
type receiver struct {
	t   *testing.T
	srv *httptest.Server
	wh  *standardwebhooks.Webhook

	mu     sync.Mutex
	answer func(n int, msg Message) int // n counts requests from 0
	got    []received
	bad    []string
}

func newReceiver(t *testing.T, answer func(n int, msg Message) int) *receiver {
	wh, err := standardwebhooks.NewWebhook(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{t: t, wh: wh, answer: answer}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.wh.Verify(body, req.Header); err != nil {
		r.bad = append(r.bad, err.Error())
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var msg Message
	if err := json.Unmarshal(body, &msg); err != nil {
		r.bad = append(r.bad, err.Error())
	}
	status := http.StatusOK
	if r.answer != nil {
		status = r.answer(len(r.got), msg)
	}
	r.got = append(r.got, received{id: req.Header.Get("webhook-id"), typ: msg.Type, stream: msg.Data.Stream, status: status, msg: msg})
	w.WriteHeader(status)
}

func (r *receiver) setAnswer(f func(n int, msg Message) int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.answer = f
}

// delivered lists the requests answered 2xx.
func (r *receiver) delivered() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []received
	for _, g := range r.got {
		if g.status/100 == 2 {
			out = append(out, g)
		}
	}
	return out
}

func (r *receiver) all() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

func (r *receiver) check() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, b := range r.bad {
		r.t.Errorf("receiver refused a request: %s", b)
	}
}

func types(rs []received) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.typ)
	}
	return out
}

// logBuffer collects a service's log lines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func startService(t *testing.T, cfg Config) (*Service, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if cfg.Path == "" {
		cfg.Path = filepath.Join(t.TempDir(), "webhooks.db")
	}
	if cfg.BackoffBase == 0 {
		cfg.BackoffBase = 10 * time.Millisecond
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, logs
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func flush(t *testing.T, s *Service) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestRetryThenDelivered(t *testing.T) {
	rcv := newReceiver(t, func(n int, _ Message) int {
		if n < 2 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	s, logs := startService(t, Config{Endpoints: []Endpoint{{URL: rcv.srv.URL + "/hooks", Secret: testSecret}}})
	s.StreamStarted("shop")
	waitFor(t, "the delivery", func() bool { return s.Stats().Delivered == 1 })
	got := rcv.all()
	if len(got) != 3 {
		t.Fatalf("%d requests, want 3 (500, 500, 200)", len(got))
	}
	for _, g := range got {
		if g.id != got[0].id || g.typ != StreamStarted || g.stream != "shop" {
			t.Errorf("attempt %+v differs from the first %+v", g, got[0])
		}
	}
	st := s.Stats()
	if st.Retried != 2 || st.Failed != 0 || st.Depth != 0 {
		t.Errorf("stats %+v, want 2 retried, none failed, an empty outbox", st)
	}
	rcv.check()
	if strings.Contains(logs.String(), "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw") {
		t.Errorf("the secret is in the logs:\n%s", logs)
	}
}

func TestGiveUp(t *testing.T) {
	rcv := newReceiver(t, func(int, Message) int { return http.StatusBadGateway })
	s, logs := startService(t, Config{
		Attempts:  3,
		Endpoints: []Endpoint{{URL: rcv.srv.URL, Secret: testSecret}},
	})
	s.StreamStarted("shop")
	waitFor(t, "the give-up", func() bool { return s.Stats().Failed == 1 })
	if n := len(rcv.all()); n != 3 {
		t.Errorf("%d attempts, want 3", n)
	}
	// The next event is sent: the given-up one no longer holds the stream.
	rcv.setAnswer(nil)
	s.Hooks().OnStreamEnd(packager.StreamEnd{Stream: "shop", Session: 1})
	waitFor(t, "the next event", func() bool { return s.Stats().Delivered == 1 })
	if got := rcv.delivered()[0].typ; got != StreamEnded {
		t.Errorf("delivered %s, want stream.ended", got)
	}
	l := logs.String()
	if !strings.Contains(l, "webhook given up after its last attempt") || !strings.Contains(l, "attempt=3") {
		t.Errorf("no give-up line in the log:\n%s", l)
	}
	if strings.Contains(l, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw") {
		t.Errorf("the secret is in the logs:\n%s", l)
	}
	if st := s.Stats(); st.Retried != 2 || st.Delivered != 1 || st.Depth != 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestTimeout: a receiver slower than Timeout has failed the attempt.
func TestTimeout(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		first := n == 1
		mu.Unlock()
		if first {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
	}))
	t.Cleanup(func() { close(release); srv.Close() })
	s, _ := startService(t, Config{Timeout: 200 * time.Millisecond, Endpoints: []Endpoint{{URL: srv.URL, Secret: testSecret}}})
	s.StreamStarted("shop")
	waitFor(t, "the delivery after a timeout", func() bool { return s.Stats().Delivered == 1 })
	if st := s.Stats(); st.Retried != 1 {
		t.Errorf("stats %+v, want 1 retried", st)
	}
}

// cueEvent is what the packager hands over for a cue.
func cueEvent(stream string, session int64, id string, start, end time.Time) packager.EventInfo {
	ei := packager.EventInfo{
		Stream: stream, Session: session, Event: packager.Event{ID: id},
		Start: packager.EventTime{Media: 10 * time.Second, Wall: start},
	}
	if !end.IsZero() {
		ei.End = packager.EventTime{Media: 10*time.Second + end.Sub(start), Wall: end}
	}
	return ei
}

// fakeCues answers Get with the records it holds.
type fakeCues map[string]cues.Record

func (f fakeCues) Get(stream, id string) (cues.Record, error) {
	r, ok := f[stream+"/"+id]
	if !ok {
		return cues.Record{}, cues.ErrCueNotFound
	}
	return r, nil
}

// TestOrderPerStream: each stream's events arrive in the order they
// happened, though another stream's receiver attempts fail meanwhile, and
// a cue's end is sent at its time, or at the stream's end if that comes
// first.
func TestOrderPerStream(t *testing.T) {
	var mu sync.Mutex
	failB := 3
	rcv := newReceiver(t, func(_ int, msg Message) int {
		mu.Lock()
		defer mu.Unlock()
		if msg.Data.Stream == "b" && failB > 0 {
			failB--
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	records := fakeCues{
		"a/p1": {Stream: "a", Cue: cues.Cue{V: 1, ID: "p1", Type: "product", Product: &cues.Product{SKU: "sku-1", Title: "Mug"}}},
	}
	s, _ := startService(t, Config{Cues: records, Endpoints: []Endpoint{{URL: rcv.srv.URL, Secret: testSecret}}})
	h := s.Hooks()
	now := time.Now()
	s.StreamStarted("a")
	s.StreamStarted("b")
	h.OnEvent(cueEvent("a", 7, "p1", now, now.Add(300*time.Millisecond)))
	// Starts in an hour: the stream's end drops it.
	h.OnEvent(cueEvent("a", 7, "later", now.Add(time.Hour), now.Add(2*time.Hour)))
	h.OnEvent(cueEvent("b", 3, "long", now, now.Add(time.Hour)))
	h.OnStreamEnd(packager.StreamEnd{Stream: "b", Session: 3})
	flush(t, s)
	waitFor(t, "stream a's cue end", func() bool {
		for _, r := range rcv.delivered() {
			if r.stream == "a" && r.typ == CueEnded {
				return true
			}
		}
		return false
	})
	h.OnStreamEnd(packager.StreamEnd{Stream: "a", Session: 7})
	waitFor(t, "every event", func() bool { return s.Stats().Delivered == 8 })
	byStream := map[string][]received{}
	for _, r := range rcv.delivered() {
		byStream[r.stream] = append(byStream[r.stream], r)
	}
	wantA := []string{StreamStarted, CueStarted, CueEnded, StreamEnded}
	wantB := []string{StreamStarted, CueStarted, CueEnded, StreamEnded}
	if got := types(byStream["a"]); fmt.Sprint(got) != fmt.Sprint(wantA) {
		t.Errorf("stream a: %v, want %v", got, wantA)
	}
	if got := types(byStream["b"]); fmt.Sprint(got) != fmt.Sprint(wantB) {
		t.Errorf("stream b: %v, want %v", got, wantB)
	}
	a := byStream["a"]
	if a[1].msg.Data.CueID != "p1" || a[1].msg.Data.Start == nil || *a[1].msg.Data.Start.MediaMs != 10000 {
		t.Errorf("cue.started data %+v", a[1].msg.Data)
	}
	var cue cues.Cue
	if err := json.Unmarshal(a[1].msg.Data.Cue, &cue); err != nil || cue.Product == nil || cue.Product.SKU != "sku-1" {
		t.Errorf("cue.started cue %s (%v)", a[1].msg.Data.Cue, err)
	}
	if end := a[2].msg.Data.End; end == nil || end.MediaMs == nil || *end.MediaMs != 10300 {
		t.Errorf("cue.ended end %+v, want media 10300 ms", end)
	}
	// Stream b's cue was cut short by its end.
	if end := byStream["b"][2].msg.Data.End; end == nil || end.MediaMs != nil || end.Wall.After(time.Now()) {
		t.Errorf("stream b's cue.ended end %+v, want the stream's end, without a media time", end)
	}
	if st := s.Stats(); st.Retried != 3 || st.Delivered != 8 || st.Depth != 0 {
		t.Errorf("stats %+v", st)
	}
	rcv.check()
}

// TestCueChanges: a cue deleted early ends at the new time; a cancelled
// scheduled cue sends nothing; a poll result is also a poll.closed.
func TestCueChanges(t *testing.T) {
	rcv := newReceiver(t, nil)
	records := fakeCues{
		"shop/r1": {Stream: "shop", Cue: cues.Cue{V: 1, ID: "r1", Type: PollResultType}},
	}
	s, _ := startService(t, Config{Cues: records, Endpoints: []Endpoint{{URL: rcv.srv.URL, Secret: testSecret}}})
	h := s.Hooks()
	now := time.Now()
	h.OnEvent(cueEvent("shop", 1, "c1", now, now.Add(time.Hour)))
	h.OnEvent(cueEvent("shop", 1, "sched", now.Add(time.Hour), time.Time{}))
	flush(t, s)
	// Deleted at once, cancelled before its start; then the poll result
	// after the deletion.
	h.OnEvent(cueEvent("shop", 1, "c1", now, now.Add(50*time.Millisecond)))
	cancelled := cueEvent("shop", 1, "sched", now.Add(time.Hour), time.Time{})
	cancelled.Cancelled = true
	h.OnEvent(cancelled)
	h.OnEvent(cueEvent("shop", 1, "r1", now.Add(100*time.Millisecond), now.Add(150*time.Millisecond)))
	waitFor(t, "the events", func() bool { return s.Stats().Delivered == 5 })
	flush(t, s)
	got := rcv.delivered()
	want := []string{CueStarted, CueEnded, CueStarted, PollClosed, CueEnded}
	if fmt.Sprint(types(got)) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", types(got), want)
	}
	if end := got[1].msg.Data.End; end == nil || *end.MediaMs != 10050 {
		t.Errorf("c1 ends at %+v, want the deletion at 10050 ms", end)
	}
	if got[2].id == got[3].id {
		t.Error("cue.started and poll.closed share a webhook-id")
	}
	var cue cues.Cue
	if err := json.Unmarshal(got[3].msg.Data.Cue, &cue); err != nil || cue.Type != PollResultType || got[3].msg.Data.CueID != "r1" {
		t.Errorf("poll.closed data %+v (%v)", got[3].msg.Data, err)
	}
	if st := s.Stats(); st.Depth != 0 {
		t.Errorf("the outbox holds %d deliveries, want none (the cancelled cue's are dropped)", st.Depth)
	}
}

func TestEventsFilter(t *testing.T) {
	all, some := newReceiver(t, nil), newReceiver(t, nil)
	s, _ := startService(t, Config{Endpoints: []Endpoint{
		{URL: all.srv.URL, Secret: testSecret},
		{URL: some.srv.URL, Secret: testSecret, Events: []string{RecordingReady}},
	}})
	s.StreamStarted("shop")
	s.RecordingReady("shop", "20261203T114501Z", "/recordings/shop/20261203T114501Z/index.m3u8")
	waitFor(t, "the deliveries", func() bool { return len(all.delivered()) == 2 && len(some.delivered()) == 1 })
	r := some.delivered()[0]
	if r.typ != RecordingReady || r.msg.Data.RecordingID != "20261203T114501Z" || r.msg.Data.RecordingURL == "" {
		t.Errorf("filtered endpoint got %+v", r)
	}
	if all.delivered()[1].id != r.id {
		t.Error("one event has two webhook-ids")
	}
}

// TestOutboxBounded: with the receiver down, the outbox keeps the newest
// MaxOutbox deliveries and counts the rest dropped.
func TestOutboxBounded(t *testing.T) {
	rcv := newReceiver(t, func(int, Message) int { return http.StatusInternalServerError })
	s, logs := startService(t, Config{
		MaxOutbox:   5,
		BackoffBase: time.Hour, // one attempt each while the test looks
		Endpoints:   []Endpoint{{URL: rcv.srv.URL, Secret: testSecret}},
	})
	for i := range 20 {
		s.StreamStarted(fmt.Sprintf("s%02d", i))
		flush(t, s)
	}
	st := s.Stats()
	if st.Depth != 5 || st.Dropped != 15 {
		t.Fatalf("stats %+v, want depth 5 and 15 dropped", st)
	}
	if !strings.Contains(logs.String(), "webhook outbox full") {
		t.Errorf("no log line for the drops:\n%s", logs)
	}
	// Reopened: the file holds the same 5.
	path := s.cfg.Path
	s.Close()
	box, err := openOutbox(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ds, _, err := box.load()
	_ = box.close()
	if err != nil || len(ds) != 5 {
		t.Fatalf("outbox file holds %d deliveries (%v), want 5", len(ds), err)
	}
	for i, d := range ds {
		if want := fmt.Sprintf("s%02d", 15+i); d.Msg.Data.Stream != want {
			t.Errorf("kept %s, want %s (the newest)", d.Msg.Data.Stream, want)
		}
	}
}

// TestRestartRedelivery: what the outbox holds when the service stops is
// delivered by the next one on the same file, once, with the same ids;
// the cues of the sessions that died with the process end at the
// restart, and those that had not started are dropped.
func TestRestartRedelivery(t *testing.T) {
	rcv := newReceiver(t, func(int, Message) int { return http.StatusInternalServerError })
	path := filepath.Join(t.TempDir(), "webhooks.db")
	cfg := Config{Path: path, BackoffBase: time.Hour, Endpoints: []Endpoint{{URL: rcv.srv.URL, Secret: testSecret}}}
	s1, _ := startService(t, cfg)
	s1.StreamStarted("shop")
	s1.Hooks().OnStreamEnd(packager.StreamEnd{Stream: "shop", Session: 1})
	now := time.Now()
	s1.Hooks().OnEvent(cueEvent("shop", 2, "c", now, now.Add(time.Hour)))
	s1.Hooks().OnEvent(cueEvent("shop", 2, "later", now.Add(time.Hour), time.Time{}))
	flush(t, s1)
	waitFor(t, "a refused attempt", func() bool { return len(rcv.all()) >= 1 })
	refused := rcv.all()[0].id
	s1.Close()

	rcv.setAnswer(nil)
	s2, _ := startService(t, cfg)
	restarted := time.Now()
	waitFor(t, "the redelivery", func() bool { return s2.Stats().Delivered == 4 })
	flush(t, s2)
	got := rcv.delivered()
	if fmt.Sprint(types(got)) != fmt.Sprint([]string{StreamStarted, StreamEnded, CueStarted, CueEnded}) {
		t.Fatalf("delivered %v", types(got))
	}
	if end := got[3].msg.Data.End; end == nil || end.MediaMs != nil || end.Wall.Before(restarted.Add(-time.Second)) || end.Wall.After(time.Now()) {
		t.Errorf("the dead session's cue ends at %+v, want the restart", end)
	}
	if got[0].id != refused {
		t.Errorf("redelivered with id %s, refused attempt had %s", got[0].id, refused)
	}
	if st := s2.Stats(); st.Depth != 0 || st.Delivered != 4 {
		t.Errorf("stats %+v", st)
	}
	rcv.check()
}

// TestQueueFull: the hooks never wait; news beyond the queue is dropped
// and counted.
func TestQueueFull(t *testing.T) {
	s, err := New(Config{Queue: 2, Path: filepath.Join(t.TempDir(), "w.db"), Endpoints: []Endpoint{{URL: "http://127.0.0.1:9/", Secret: testSecret}}})
	if err != nil {
		t.Fatal(err)
	}
	// Not started: nothing takes from the queue.
	done := make(chan struct{})
	go func() {
		for range 10 {
			s.Hooks().OnStreamEnd(packager.StreamEnd{Stream: "shop"})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("a hook waited")
	}
	if got := s.Stats().Dropped; got != 8 {
		t.Errorf("%d dropped, want 8", got)
	}
}

func TestNoEndpoints(t *testing.T) {
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	s.StreamStarted("shop")
	s.Close()
	if _, err := New(Config{Endpoints: []Endpoint{{URL: "http://a/", Secret: testSecret}}}); !errors.Is(err, errNoPath) {
		t.Errorf("no path: %v", err)
	}
}

func TestBackoff(t *testing.T) {
	s := &Service{cfg: Config{BackoffBase: time.Second, BackoffMax: 10 * time.Second}}
	for n, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 8 * time.Second, 5: 10 * time.Second, 40: 10 * time.Second} {
		if got := s.backoff(n); got != want {
			t.Errorf("backoff(%d) = %v, want %v", n, got, want)
		}
	}
}
