package cues

import (
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/shopcast/shopcast/packager"
)

// countingTimeline counts the AddEvent calls per cue id, so that a test can
// tell a retry answered from the store from one placed twice.
type countingTimeline struct {
	*fakeTimeline
	mu   sync.Mutex
	adds map[string]int
}

func (c *countingTimeline) AddEvent(s string, ev packager.Event) (packager.EventTime, error) {
	c.mu.Lock()
	if c.adds == nil {
		c.adds = map[string]int{}
	}
	c.adds[ev.ID]++
	c.mu.Unlock()
	return c.fakeTimeline.AddEvent(s, ev)
}

func (c *countingTimeline) added(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.adds[id]
}

// restarted is the server after a crash: a new store handle on the file, a
// packager that knows no events, a new Service and API. live says whether
// the stream is live again; its start puts the stored cues back, as the
// packager's OnStreamStart does.
func (e *apiEnv) restarted(live bool) (*apiEnv, *countingTimeline) {
	e.t.Helper()
	if err := e.store.Close(); err != nil {
		e.t.Fatal(err)
	}
	store := openStore(e.t, e.path)
	e.t.Cleanup(func() { store.Close() })
	fake := newFake()
	fake.cur = 20 * time.Second // the restart took a while
	tl := &countingTimeline{fakeTimeline: fake}
	svc := &Service{Store: store, Timeline: tl, Logger: slog.New(slog.DiscardHandler), now: fake.now}
	a := &API{Service: svc, Logger: svc.Logger, now: fake.now}
	after := &apiEnv{t: e.t, api: a, svc: svc, fake: fake, store: store, path: e.path}
	if live {
		after.startStream()
	}
	return after, tl
}

func (e *apiEnv) startStream() {
	e.fake.mu.Lock()
	e.fake.streams["live"] = true
	e.fake.mu.Unlock()
	e.svc.StreamStarted("live")
}

// TestRetryAfterCrash kills the server at each moment of a cue's POST and
// DELETE, restarts it on the same store, and retries as a producer that
// got no answer would: the retry of the same cue succeeds or shows the
// cue, never a 409 for a cue GET does not show, and the cue is placed once.
func TestRetryAfterCrash(t *testing.T) {
	const id = "c1"
	now := func(t *testing.T) string { return cueBody(t, id, `"now"`, "30000") }
	decode := func(t *testing.T, body string) *Cue {
		c, err := DecodeCue([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	// placeThenEnd places the cue of body, then ends it through the
	// Service after the media clock moved on by after: the store has
	// recorded the end.
	placeThenEnd := func(t *testing.T, e *apiEnv, body string, after time.Duration) {
		if _, err := e.svc.Place("live", decode(t, body)); err != nil {
			t.Fatal(err)
		}
		rec, err := e.store.Get("live", id)
		if err != nil {
			t.Fatal(err)
		}
		e.fake.advance(after)
		if _, err := e.svc.End("live", &rec); err != nil {
			t.Fatal(err)
		}
	}
	type step struct {
		method string // POST, GET, DELETE; START starts the stream
		body   string // for POST; the crashed POST's when empty
		status int
		state  State // in the answer, when set
	}
	cases := []struct {
		name  string
		body  func(t *testing.T) string
		crash func(t *testing.T, e *apiEnv, body string) // what the first process did before it died
		live  bool
		steps []step
		adds  int // AddEvent calls for the cue after the restart
	}{
		{
			name: "after reserving the id, before the packager", body: now, live: true,
			crash: func(t *testing.T, e *apiEnv, body string) {
				if _, err := e.store.Reserve("live", decode(t, body), e.fake.now()); err != nil {
					t.Fatal(err)
				}
			},
			steps: []step{{"GET", "", 404, ""}, {"DELETE", "", 404, ""}, {"POST", "", 201, StateActive},
				{"GET", "", 200, StateActive}, {"POST", "", 201, StateActive}},
			adds: 1,
		},
		{
			name: "after the packager placed it, before the store recorded it", body: now, live: true,
			crash: func(t *testing.T, e *apiEnv, body string) {
				rec, err := e.store.Reserve("live", decode(t, body), e.fake.now())
				if err != nil {
					t.Fatal(err)
				}
				ev, err := NewEvent(&rec.Cue, rec.Seq)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := e.fake.AddEvent("live", ev); err != nil {
					t.Fatal(err)
				}
			},
			steps: []step{{"GET", "", 404, ""}, {"POST", "", 201, StateActive}, {"GET", "", 200, StateActive}},
			adds:  1,
		},
		{
			name: "a scheduled cue, after reserving the id", live: true,
			body: func(t *testing.T) string { return cueBody(t, id, `60000`, "10000") },
			crash: func(t *testing.T, e *apiEnv, body string) {
				if _, err := e.store.Reserve("live", decode(t, body), e.fake.now()); err != nil {
					t.Fatal(err)
				}
			},
			steps: []step{{"POST", "", 201, StateScheduled}, {"GET", "", 200, StateScheduled}},
			adds:  1,
		},
		{
			name: "after reserving the id, retried with another cue", body: now, live: true,
			crash: func(t *testing.T, e *apiEnv, body string) {
				if _, err := e.store.Reserve("live", decode(t, body), e.fake.now()); err != nil {
					t.Fatal(err)
				}
			},
			steps: []step{{"POST", cueBody(t, id, `"now"`, "20000"), 409, ""}, {"GET", "", 404, ""},
				{"POST", "", 201, StateActive}},
			adds: 1,
		},
		{
			name: "after reserving the id, retried while the stream is down", body: now,
			crash: func(t *testing.T, e *apiEnv, body string) {
				if _, err := e.store.Reserve("live", decode(t, body), e.fake.now()); err != nil {
					t.Fatal(err)
				}
			},
			steps: []step{{"POST", "", 404, ""}, {"GET", "", 404, ""}, {"START", "", 0, ""},
				{"POST", "", 201, StateActive}, {"GET", "", 200, StateActive}},
			adds: 1,
		},
		{
			name: "during a retry's take-over", body: now, live: true,
			crash: func(t *testing.T, e *apiEnv, body string) {
				if _, err := e.store.Reserve("live", decode(t, body), e.fake.now()); err != nil {
					t.Fatal(err)
				}
				// The first restart took the reservation over, then died too.
				if err := e.store.Close(); err != nil {
					t.Fatal(err)
				}
				e.store = openStore(t, e.path)
				if rec, err := e.store.Reserve("live", decode(t, body), e.fake.now()); err != nil || rec.State != StatePending {
					t.Fatalf("take-over %+v %v", rec, err)
				}
			},
			steps: []step{{"POST", "", 201, StateActive}, {"GET", "", 200, StateActive}},
			adds:  1,
		},
		{
			name: "after the store recorded it, before the 201", body: now, live: true,
			crash: func(t *testing.T, e *apiEnv, body string) {
				if _, err := e.svc.Place("live", decode(t, body)); err != nil {
					t.Fatal(err)
				}
			},
			// Put back by the stream's start, not by the retry.
			steps: []step{{"POST", "", 201, StateActive}, {"GET", "", 200, StateActive}},
			adds:  1,
		},
		{
			name: "after the store recorded it, retried while the stream is down", body: now,
			crash: func(t *testing.T, e *apiEnv, body string) {
				if _, err := e.svc.Place("live", decode(t, body)); err != nil {
					t.Fatal(err)
				}
			},
			steps: []step{{"POST", "", 201, StateActive}, {"GET", "", 200, StateActive},
				{"POST", cueBody(t, id, `"now"`, "20000"), 409, ""}},
			adds: 0,
		},
		{
			name: "during a DELETE, before the store recorded the end", body: now, live: true,
			crash: func(t *testing.T, e *apiEnv, body string) {
				if _, err := e.svc.Place("live", decode(t, body)); err != nil {
					t.Fatal(err)
				}
				e.fake.advance(time.Second)
				if _, err := e.fake.EndEvent("live", id); err != nil {
					t.Fatal(err)
				}
			},
			// The DELETE was not acknowledged: the cue is still on, and a
			// retry of the DELETE ends it.
			steps: []step{{"GET", "", 200, StateActive}, {"POST", "", 201, StateActive},
				{"DELETE", "", 200, StateEnded}, {"POST", "", 201, StateEnded}, {"GET", "", 200, StateEnded}},
			adds: 1,
		},
		{
			name: "during a DELETE, after the store recorded the end, before the 200", body: now, live: true,
			crash: func(t *testing.T, e *apiEnv, body string) { placeThenEnd(t, e, body, time.Second) },
			steps: []step{{"DELETE", "", 200, StateEnded}, {"POST", "", 201, StateEnded}, {"GET", "", 200, StateEnded}},
			adds:  0,
		},
		{
			name: "a scheduled cue, during its DELETE, after the store recorded the cancel", live: true,
			body:  func(t *testing.T) string { return cueBody(t, id, `60000`, "10000") },
			crash: func(t *testing.T, e *apiEnv, body string) { placeThenEnd(t, e, body, 0) },
			steps: []step{{"POST", "", 201, StateCancelled}, {"DELETE", "", 200, StateCancelled}},
			adds:  0,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			before := newAPIEnv(t, nil)
			body := tc.body(t)
			tc.crash(t, before, body)
			after, tl := before.restarted(tc.live)
			for i, st := range tc.steps {
				if st.method == "START" {
					after.startStream()
					continue
				}
				path, b := cuesPath+"/"+id, ""
				if st.method == "POST" {
					path, b = cuesPath, body
					if st.body != "" {
						b = st.body
					}
				}
				w := after.do(st.method, path, b)
				if w.Code != st.status {
					t.Fatalf("step %d: %s %d, want %d: %s", i, st.method, w.Code, st.status, w.Body)
				}
				if st.status == http.StatusCreated && w.Header().Get("Location") != cuesPath+"/"+id {
					t.Errorf("step %d: Location %q", i, w.Header().Get("Location"))
				}
				if st.state != "" {
					if r := decodeResp(t, w); r.State != st.state || r.Cue.ID != id {
						t.Fatalf("step %d: %s answered %s %s, want %s", i, st.method, r.Cue.ID, r.State, st.state)
					}
				}
			}
			if n := tl.added(id); n != tc.adds {
				t.Errorf("the packager was given the cue %d times after the restart, want %d", n, tc.adds)
			}
			// Its emsg ids are those the first process gave it (seq 1).
			if ev := after.fake.event("live", id); ev != nil {
				if start, _ := EmsgIDs(1); ev.ev.EmsgID != start {
					t.Errorf("emsg id %d, want %d", ev.ev.EmsgID, start)
				}
			}
		})
	}
}

// gatedTimeline holds AddEvent until the test opens the gate, as the
// packager holds a "now" cue until the next frame.
type gatedTimeline struct {
	*countingTimeline
	entered chan struct{}
	gate    chan struct{}
}

func (g *gatedTimeline) AddEvent(s string, ev packager.Event) (packager.EventTime, error) {
	g.entered <- struct{}{}
	<-g.gate
	return g.countingTimeline.AddEvent(s, ev)
}

// TestRetryDuringFirstAttempt: a retry that arrives while its first POST
// is still being placed gets that POST's outcome, not a 409.
func TestRetryDuringFirstAttempt(t *testing.T) {
	e := newAPIEnv(t, nil)
	tl := &gatedTimeline{countingTimeline: &countingTimeline{fakeTimeline: e.fake},
		entered: make(chan struct{}, 2), gate: make(chan struct{})}
	e.svc.Timeline = tl
	body := cueBody(t, "c1", `"now"`, "30000")
	codes := make(chan int, 2)
	post := func() { codes <- e.do("POST", cuesPath, body).Code }
	go post()
	<-tl.entered // the first attempt is in the packager
	go post()
	deadline := time.Now().Add(5 * time.Second)
	for waiting := 0; waiting < 2; {
		if time.Now().After(deadline) {
			t.Fatal("the retry did not wait for the first attempt")
		}
		e.svc.ids.mu.Lock()
		if l := e.svc.ids.m["live\x00c1"]; l != nil {
			waiting = l.refs
		}
		e.svc.ids.mu.Unlock()
		time.Sleep(time.Millisecond) // polling a condition, with the deadline above
	}
	close(tl.gate)
	for range 2 {
		if c := <-codes; c != http.StatusCreated {
			t.Fatalf("POST %d, want 201 for both", c)
		}
	}
	if n := tl.added("c1"); n != 1 {
		t.Fatalf("placed %d times", n)
	}
	if len(e.svc.ids.m) != 0 {
		t.Fatalf("id locks left: %v", e.svc.ids.m)
	}
}
