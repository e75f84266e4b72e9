package cues

import (
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// pollTimers stands in for time.AfterFunc: the test fires the timers
// itself once it has moved the fake media clock to their time.
type pollTimers struct {
	mu     sync.Mutex
	timers []*pollTimer
}

type pollTimer struct {
	after   time.Duration
	f       func()
	stopped bool
	fired   bool
}

func (p *pollTimers) afterFunc(d time.Duration, f func()) func() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	tm := &pollTimer{after: d, f: f}
	p.timers = append(p.timers, tm)
	return func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		if tm.stopped || tm.fired {
			return false
		}
		tm.stopped = true
		return true
	}
}

// fire runs the armed timers, as time.AfterFunc would at their time.
func (p *pollTimers) fire(t *testing.T) int {
	t.Helper()
	p.mu.Lock()
	var due []*pollTimer
	for _, tm := range p.timers {
		if !tm.stopped && !tm.fired {
			tm.fired = true
			due = append(due, tm)
		}
	}
	p.mu.Unlock()
	for _, tm := range due {
		tm.f()
	}
	return len(due)
}

// tallies is a fake of the audience package's Tally.
type tallies struct {
	mu     sync.Mutex
	counts map[string][]int64
	asked  []string
}

func (f *tallies) tally(stream, poll string) []int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, stream+"/"+poll)
	return f.counts[poll]
}

func newPollEnv(t *testing.T, counts map[string][]int64) (*apiEnv, *pollTimers, *tallies) {
	t.Helper()
	e := newAPIEnv(t, nil)
	timers := &pollTimers{}
	tal := &tallies{counts: counts}
	e.svc.afterFunc = timers.afterFunc
	e.svc.Tally = tal.tally
	e.svc.PollResultMs = 8000
	return e, timers, tal
}

func (e *apiEnv) get(id string) *CueResponse {
	e.t.Helper()
	w := e.do("GET", cuesPath+"/"+id, "")
	if w.Code != http.StatusOK {
		e.t.Fatalf("GET %s: %d %s", id, w.Code, w.Body)
	}
	return decodeResp(e.t, w)
}

func TestPollResultAtPollEnd(t *testing.T) {
	cases := []struct {
		name   string
		counts []int64 // what Tally returns
		want   []int64
	}{
		{"counts", []int64{4, 7, 1}, []int64{4, 7, 1}},
		{"no votes", nil, []int64{0, 0, 0}},
		{"short tally", []int64{2}, []int64{2, 0, 0}},
		{"long tally", []int64{1, 2, 3, 9}, []int64{1, 2, 3}},
		{"negative count", []int64{-1, 5, 0}, []int64{0, 5, 0}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, timers, tal := newPollEnv(t, map[string][]int64{"poll-1": tc.counts})
			// The stream is at media 10 s: the poll runs 10 s to 30 s.
			w := e.do("POST", cuesPath, validPoll)
			if w.Code != http.StatusCreated {
				t.Fatalf("POST poll: %d %s", w.Code, w.Body)
			}
			if n, ok := e.svc.OpenPoll("live", "poll-1"); !ok || n != 3 {
				t.Fatalf("OpenPoll at the start = %d, %v; want 3, true", n, ok)
			}
			if _, ok := e.svc.OpenPoll("live", "poll-2"); ok {
				t.Fatal("OpenPoll of an unknown poll is open")
			}
			if _, ok := e.svc.OpenPoll("other", "poll-1"); ok {
				t.Fatal("OpenPoll of another stream's poll is open")
			}
			timers.mu.Lock()
			after := timers.timers[0].after
			timers.mu.Unlock()
			if after != 20*time.Second {
				t.Fatalf("close timer in %v, want 20s", after)
			}
			e.fake.advance(19 * time.Second)
			if _, ok := e.svc.OpenPoll("live", "poll-1"); !ok {
				t.Fatal("poll closed a second before its end")
			}
			e.fake.advance(time.Second) // media 30 s: the end
			if _, ok := e.svc.OpenPoll("live", "poll-1"); ok {
				t.Fatal("poll open at its end")
			}
			if n := timers.fire(t); n != 1 {
				t.Fatalf("%d timers fired", n)
			}
			if !slices.Equal(tal.asked, []string{"live/poll-1"}) {
				t.Fatalf("Tally asked %v", tal.asked)
			}

			res := e.get("poll-1-result")
			r := res.Cue.PollResult
			if res.Cue.Type != TypePollResult || r == nil || r.Poll != "poll-1" || r.Question != "Which colour next?" ||
				!slices.Equal(r.Options, []string{"Red", "Blue", "Green"}) || !slices.Equal(r.Counts, tc.want) {
				t.Fatalf("result %+v %+v", res.Cue, r)
			}
			// At the poll's end media time, not when the timer ran.
			if res.MediaTimeMs != 30000 || res.Cue.DurationMs != 8000 {
				t.Fatalf("result at %d ms for %d ms, want 30000 for 8000", res.MediaTimeMs, res.Cue.DurationMs)
			}
			ev := e.fake.event("live", "poll-1-result")
			if ev == nil || ev.at.Media != 30*time.Second {
				t.Fatalf("packager event %+v", ev)
			}
			if p := parseEmsg(t, ev.box); p.PresentationTime != 30*90000 || p.EventDuration != 8000*90 {
				t.Fatalf("result emsg %+v", p)
			}
			// One result per poll.
			if n := timers.fire(t); n != 0 {
				t.Fatalf("%d more timers fired", n)
			}
		})
	}
}

func TestPollDeletedEarly(t *testing.T) {
	e, timers, _ := newPollEnv(t, map[string][]int64{"poll-1": {1, 2, 3}})
	if w := e.do("POST", cuesPath, validPoll); w.Code != http.StatusCreated {
		t.Fatalf("POST poll: %d %s", w.Code, w.Body)
	}
	e.fake.advance(4 * time.Second)
	if w := e.do("DELETE", cuesPath+"/poll-1", ""); w.Code != http.StatusOK {
		t.Fatalf("DELETE: %d %s", w.Code, w.Body)
	}
	if _, ok := e.svc.OpenPoll("live", "poll-1"); ok {
		t.Fatal("deleted poll open")
	}
	res := e.get("poll-1-result")
	if res.MediaTimeMs != 14000 || !slices.Equal(res.Cue.PollResult.Counts, []int64{1, 2, 3}) {
		t.Fatalf("result at %d: %+v", res.MediaTimeMs, res.Cue.PollResult)
	}
	if n := timers.fire(t); n != 0 {
		t.Fatalf("the end timer still fired (%d)", n)
	}
}

func TestPollScheduled(t *testing.T) {
	e, timers, _ := newPollEnv(t, nil)
	// Media 10 s now; the poll runs 15 s to 35 s.
	if w := e.do("POST", cuesPath, edit(t, validPoll, "at", "15000")); w.Code != http.StatusCreated {
		t.Fatalf("POST poll: %d %s", w.Code, w.Body)
	}
	if _, ok := e.svc.OpenPoll("live", "poll-1"); ok {
		t.Fatal("poll open before its start")
	}
	e.fake.advance(5 * time.Second)
	if n, ok := e.svc.OpenPoll("live", "poll-1"); !ok || n != 3 {
		t.Fatal("poll not open at its start")
	}
	// Cancelled before its start: no result.
	e2, timers2, _ := newPollEnv(t, nil)
	e2.do("POST", cuesPath, edit(t, validPoll, "at", "15000"))
	if w := e2.do("DELETE", cuesPath+"/poll-1", ""); w.Code != http.StatusOK || decodeResp(t, w).State != StateCancelled {
		t.Fatalf("DELETE: %d %s", w.Code, w.Body)
	}
	if n := timers2.fire(t); n != 0 {
		t.Fatalf("cancelled poll's timer fired")
	}
	if w := e2.do("GET", cuesPath+"/poll-1-result", ""); w.Code != http.StatusNotFound {
		t.Fatalf("cancelled poll has a result: %d", w.Code)
	}
	_ = timers
}

func TestPollClosedAfterRestart(t *testing.T) {
	e, _, _ := newPollEnv(t, nil)
	if w := e.do("POST", cuesPath, validPoll); w.Code != http.StatusCreated {
		t.Fatalf("POST poll: %d %s", w.Code, w.Body)
	}
	e.svc.Close()
	// A new server on the same store, 10 s later (media 20 s): the poll is
	// sent again for its last 10 s and closes at its end.
	after, _ := e.restarted(false)
	timers := &pollTimers{}
	after.svc.afterFunc = timers.afterFunc
	after.svc.Tally = func(string, string) []int64 { return []int64{0, 9, 0} }
	after.startStream()
	if _, ok := after.svc.OpenPoll("live", "poll-1"); !ok {
		t.Fatal("restored poll not open")
	}
	after.fake.advance(10 * time.Second)
	timers.fire(t)
	res := after.get("poll-1-result")
	if res.MediaTimeMs != 30000 || !slices.Equal(res.Cue.PollResult.Counts, []int64{0, 9, 0}) {
		t.Fatalf("result at %d: %+v", res.MediaTimeMs, res.Cue.PollResult)
	}
}

func TestPollResultID(t *testing.T) {
	long := "p" + strings.Repeat("0123456789", 7)[:63]
	for _, id := range []string{"poll-1", long} {
		r := pollResultID(id)
		if !idPattern.MatchString(r) || r == id {
			t.Fatalf("pollResultID(%q) = %q", id, r)
		}
	}
	if pollResultID(long) == pollResultID(long[:62]+"x") {
		t.Fatal("two long ids share a result id")
	}
}

func TestReplaces(t *testing.T) {
	e := newAPIEnv(t, nil)
	// sneaker-42 from media 10 s for 30 s.
	if w := e.do("POST", cuesPath, edit(t, validCue, "duration_ms", "30000")); w.Code != http.StatusCreated {
		t.Fatalf("POST: %d %s", w.Code, w.Body)
	}
	e.fake.advance(2 * time.Second)
	w := e.do("POST", cuesPath, validUpdate)
	if w.Code != http.StatusCreated {
		t.Fatalf("POST update: %d %s", w.Code, w.Body)
	}
	upd := decodeResp(t, w)
	old := e.get("sneaker-42")
	if old.State != StateEnded || old.EndMediaTimeMs == nil || *old.EndMediaTimeMs != 12000 {
		t.Fatalf("old cue %s, end %v", old.State, old.EndMediaTimeMs)
	}
	// The old one ends on the frame the new one starts.
	if upd.MediaTimeMs != 12000 || upd.ProgramDateTime != old.EndProgramDateTime || upd.State != StateActive {
		t.Fatalf("update at %d (%s), old ends %s", upd.MediaTimeMs, upd.ProgramDateTime, old.EndProgramDateTime)
	}
	oe := e.fake.event("live", "sneaker-42")
	if !oe.ended || oe.endBox == nil || parseEmsg(t, oe.endBox).PresentationTime != 12*90000 {
		t.Fatal("old cue has no END event at 12 s")
	}
	if p := parseEmsg(t, e.fake.event("live", "sneaker-42b").box); p.PresentationTime != 12*90000 {
		t.Fatalf("update emsg at %d", p.PresentationTime)
	}
	// A retry of the update answers the same and changes nothing.
	e.fake.advance(time.Second)
	if w := e.do("POST", cuesPath, validUpdate); w.Code != http.StatusCreated || decodeResp(t, w).MediaTimeMs != 12000 {
		t.Fatalf("retry: %d %s", w.Code, w.Body)
	}

	// What cannot be replaced is a 400 naming `replaces`, and its id stays
	// free.
	if w := e.do("POST", cuesPath, validPoll); w.Code != http.StatusCreated {
		t.Fatalf("POST poll: %d %s", w.Code, w.Body)
	}
	bad := []struct{ name, replaces string }{
		{"unknown", "nope"},
		{"ended", "sneaker-42"},
		{"a poll", "poll-1"},
	}
	for _, b := range bad {
		body := edit(t, edit(t, validUpdate, "replaces", `"`+b.replaces+`"`), "id", `"upd-x"`)
		w := e.do("POST", cuesPath, body)
		if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), `"field":"replaces"`) {
			t.Fatalf("%s: %d %s", b.name, w.Code, w.Body)
		}
	}
	if w := e.do("GET", cuesPath+"/upd-x", ""); w.Code != http.StatusNotFound {
		t.Fatalf("refused update kept its id: %d", w.Code)
	}
	// A deal replaces the product now on screen.
	deal := edit(t, edit(t, validDeal, "replaces", `"sneaker-42b"`), "id", `"deal-2"`)
	if w := e.do("POST", cuesPath, deal); w.Code != http.StatusCreated {
		t.Fatalf("deal replacing: %d %s", w.Code, w.Body)
	}
	if st := e.get("sneaker-42b").State; st != StateEnded {
		t.Fatalf("replaced by a deal: %s", st)
	}
}
