package cues

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopcast/shopcast/packager"
)

// The packager's Manager is the Timeline the wiring uses.
var _ Timeline = (*packager.Manager)(nil)

// fakeTimeline places events the way the packager's contract says, on a
// media clock the test moves: media time m has program date-time wall0+m.
type fakeTimeline struct {
	mu      sync.Mutex
	wall0   time.Time
	cur     time.Duration // the media time of the next frame
	streams map[string]bool
	events  map[string]map[string]*fakeEvent
	addErr  error // returned by AddEvent when set
}

type fakeEvent struct {
	ev     packager.Event
	at     packager.EventTime
	box    []byte // the start emsg, built at placement
	endBox []byte
	ended  bool
}

func newFake(streams ...string) *fakeTimeline {
	f := &fakeTimeline{wall0: t0, streams: map[string]bool{}, events: map[string]map[string]*fakeEvent{}}
	for _, s := range streams {
		f.streams[s] = true
	}
	return f
}

func (f *fakeTimeline) now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.wall0.Add(f.cur)
}

func (f *fakeTimeline) advance(d time.Duration) {
	f.mu.Lock()
	f.cur += d
	f.mu.Unlock()
}

func (f *fakeTimeline) HasStream(s string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.streams[s]
}

func (f *fakeTimeline) AddEvent(s string, ev packager.Event) (packager.EventTime, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.addErr != nil {
		return packager.EventTime{}, f.addErr
	}
	if !f.streams[s] {
		return packager.EventTime{}, packager.ErrNotFound
	}
	if f.events[s] == nil {
		f.events[s] = map[string]*fakeEvent{}
	}
	if f.events[s][ev.ID] != nil {
		return packager.EventTime{}, packager.ErrEventExists
	}
	var m time.Duration
	switch {
	case ev.Now:
		m = f.cur
	case ev.Time >= 0:
		m = ev.Time
	default:
		m = ev.Wall.Sub(f.wall0)
	}
	box, err := ev.StartBox(90000, uint64(m/time.Millisecond)*90)
	if err != nil {
		return packager.EventTime{}, err
	}
	at := packager.EventTime{Media: m, Wall: f.wall0.Add(m)}
	f.events[s][ev.ID] = &fakeEvent{ev: ev, at: at, box: box}
	return at, nil
}

func (f *fakeTimeline) EndEvent(s, id string) (packager.EventTime, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e := f.events[s][id]
	if !f.streams[s] || e == nil {
		return packager.EventTime{}, packager.ErrNotFound
	}
	e.ended = true
	if f.cur < e.at.Media { // not started: cancelled
		return packager.EventTime{}, nil
	}
	b, err := e.ev.EndBox(90000, uint64(f.cur/time.Millisecond)*90)
	if err != nil {
		return packager.EventTime{}, err
	}
	e.endBox = b
	return packager.EventTime{Media: f.cur, Wall: f.wall0.Add(f.cur)}, nil
}

func (f *fakeTimeline) event(s, id string) *fakeEvent {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.events[s][id]
}

type apiEnv struct {
	t     *testing.T
	api   *API
	svc   *Service
	fake  *fakeTimeline
	store *Store
	path  string
}

func newAPIEnv(t *testing.T, configure func(*API)) *apiEnv {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cues.db")
	store := openStore(t, path)
	t.Cleanup(func() { store.Close() })
	fake := newFake("live")
	fake.cur = 10 * time.Second
	// The wiring's order: the service, then the API over it.
	svc := &Service{Store: store, Timeline: fake, Logger: slog.New(slog.DiscardHandler), now: fake.now}
	a := &API{Service: svc, Logger: svc.Logger}
	a.now = fake.now
	if configure != nil {
		configure(a)
	}
	return &apiEnv{t: t, api: a, svc: svc, fake: fake, store: store, path: path}
}

type reqOpt func(*http.Request)

func from(addr string) reqOpt { return func(r *http.Request) { r.RemoteAddr = addr } }
func header(k, v string) reqOpt {
	return func(r *http.Request) { r.Header.Set(k, v) }
}

func (e *apiEnv) do(method, path, body string, opts ...reqOpt) *httptest.ResponseRecorder {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r := httptest.NewRequest(method, path, rd)
	r.RemoteAddr = "127.0.0.1:40000"
	for _, o := range opts {
		o(r)
	}
	w := httptest.NewRecorder()
	e.api.ServeHTTP(w, r)
	return w
}

func decodeResp(t *testing.T, w *httptest.ResponseRecorder) *CueResponse {
	t.Helper()
	var out CueResponse
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
		t.Fatalf("body %s: %v", w.Body, err)
	}
	return &out
}

func cueBody(t *testing.T, id, at string, durationMs string) string {
	t.Helper()
	b := mutate(t, "id", `"`+id+`"`)
	var m map[string]json.RawMessage
	_ = json.Unmarshal([]byte(b), &m)
	m["at"] = json.RawMessage(at)
	if durationMs == "" {
		delete(m, "duration_ms")
	} else {
		m["duration_ms"] = json.RawMessage(durationMs)
	}
	out, _ := json.Marshal(m)
	return string(out)
}

const cuesPath = "/api/v1/streams/live/cues"

func TestAPIPost(t *testing.T) {
	e := newAPIEnv(t, nil)
	w := e.do("POST", cuesPath, cueBody(t, "c1", `"now"`, "30000"))
	if w.Code != http.StatusCreated {
		t.Fatalf("status %d %s", w.Code, w.Body)
	}
	if loc := w.Header().Get("Location"); loc != cuesPath+"/c1" {
		t.Errorf("Location %q", loc)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	r := decodeResp(t, w)
	if r.Cue.ID != "c1" || r.State != StateActive || r.MediaTimeMs != 10000 ||
		r.ProgramDateTime != "2025-06-01T18:00:10.000Z" || r.EndProgramDateTime != "2025-06-01T18:00:40.000Z" {
		t.Fatalf("response %+v", r)
	}
	// The packager got the event: start, duration, emsg, DATERANGE.
	ev := e.fake.event("live", "c1")
	if ev == nil || !ev.ev.Now || ev.ev.Duration != 30*time.Second {
		t.Fatalf("event %+v", ev)
	}
	em := parseEmsg(t, ev.box)
	start, _ := EmsgIDs(1)
	if em.ID != start || em.PresentationTime != 900000 || em.EventDuration != 30*90000 {
		t.Fatalf("emsg %+v", em)
	}
	if dr, err := ev.ev.DateRangeTag(ev.at.Wall, time.Time{}); err != nil || !strings.HasPrefix(dr, `#EXT-X-DATERANGE:ID="c1",`) {
		t.Fatalf("DATERANGE %s %v", dr, err)
	}
	// Stored before the 201: a new store on the same file has it.
	rec, err := e.store.Get("live", "c1")
	if err != nil || rec.StateAt(e.fake.now()) != StateActive {
		t.Fatalf("stored %+v %v", rec, err)
	}

	// Placement by media time and by wall clock.
	w = e.do("POST", cuesPath, cueBody(t, "c2", `60000`, ""))
	if r := decodeResp(t, w); w.Code != 201 || r.State != StateScheduled || r.MediaTimeMs != 60000 || r.EndProgramDateTime != "" {
		t.Fatalf("media time: %d %s", w.Code, w.Body)
	}
	if ev := e.fake.event("live", "c2"); ev.ev.Now || ev.ev.Time != time.Minute {
		t.Fatalf("media event %+v", ev.ev)
	}
	w = e.do("POST", cuesPath, cueBody(t, "c3", `"2025-06-01T20:00:20+02:00"`, ""))
	if r := decodeResp(t, w); w.Code != 201 || r.MediaTimeMs != 20000 || r.ProgramDateTime != "2025-06-01T18:00:20.000Z" {
		t.Fatalf("wall time: %d %s", w.Code, w.Body)
	}
	if ev := e.fake.event("live", "c3"); ev.ev.Time >= 0 || !ev.ev.Wall.Equal(t0.Add(20*time.Second)) {
		t.Fatalf("wall event %+v", ev.ev)
	}

	// A generated id.
	w = e.do("POST", cuesPath, mutate(t, "id", ""))
	if r := decodeResp(t, w); w.Code != 201 || !idPattern.MatchString(r.Cue.ID) {
		t.Fatalf("generated id: %d %s", w.Code, w.Body)
	}
}

func TestAPIErrors(t *testing.T) {
	cases := []struct {
		name      string
		configure func(*API)
		setup     func(e *apiEnv)
		method    string
		path      string
		body      string
		opts      []reqOpt
		status    int
		check     func(t *testing.T, w *httptest.ResponseRecorder)
	}{
		{
			name: "400 names the field", method: "POST", path: cuesPath,
			body: mutate(t, "product.price.amount", `"12,50"`), status: 400,
			check: func(t *testing.T, w *httptest.ResponseRecorder) {
				var b map[string]string
				_ = json.Unmarshal(w.Body.Bytes(), &b)
				if b["error"] != "invalid cue" || b["field"] != "product.price.amount" || b["message"] == "" {
					t.Fatalf("body %s", w.Body)
				}
			},
		},
		{name: "400 unknown field", method: "POST", path: cuesPath, body: mutate(t, "product.colour", `"red"`), status: 400,
			check: wantField("product.colour")},
		{name: "400 trailing data", method: "POST", path: cuesPath, body: validCue + "{}", status: 400, check: wantField("")},
		{
			name: "401 without token", configure: withToken("s3cret"), method: "POST", path: cuesPath, body: validCue, status: 401,
			check: func(t *testing.T, w *httptest.ResponseRecorder) {
				if h := w.Header().Get("WWW-Authenticate"); h != `Bearer realm="shopcast"` {
					t.Fatalf("WWW-Authenticate %q", h)
				}
			},
		},
		{
			name: "401 wrong token", configure: withToken("s3cret"), method: "GET", path: cuesPath,
			opts: []reqOpt{header("Authorization", "Bearer s3crex")}, status: 401,
			check: func(t *testing.T, w *httptest.ResponseRecorder) {
				if h := w.Header().Get("WWW-Authenticate"); !strings.Contains(h, `error="invalid_token"`) {
					t.Fatalf("WWW-Authenticate %q", h)
				}
			},
		},
		{name: "401 basic auth", configure: withToken("s3cret"), method: "GET", path: cuesPath,
			opts: []reqOpt{header("Authorization", "Basic czNjcmV0")}, status: 401},
		{name: "token from anywhere", configure: withToken("s3cret"), method: "GET", path: cuesPath,
			opts: []reqOpt{header("Authorization", "bearer s3cret"), from("203.0.113.9:1234")}, status: 200},
		{name: "403 remote without token", method: "GET", path: cuesPath, opts: []reqOpt{from("203.0.113.9:1234")}, status: 403},
		{name: "403 proxied", method: "GET", path: cuesPath, opts: []reqOpt{header("X-Forwarded-For", "203.0.113.9")}, status: 403},
		{name: "403 private address", method: "GET", path: cuesPath, opts: []reqOpt{from("10.0.0.5:1234")}, status: 403},
		{name: "loopback v6", method: "GET", path: cuesPath, opts: []reqOpt{from("[::1]:1234")}, status: 200},
		{name: "loopback v4-mapped", method: "GET", path: cuesPath, opts: []reqOpt{from("[::ffff:127.0.0.2]:1234")}, status: 200},
		{name: "404 unknown stream post", method: "POST", path: "/api/v1/streams/nope/cues", body: validCue, status: 404},
		{name: "404 unknown stream list", method: "GET", path: "/api/v1/streams/nope/cues", status: 404},
		{name: "404 unknown cue", method: "GET", path: cuesPath + "/nope", status: 404},
		{name: "404 delete unknown cue", method: "DELETE", path: cuesPath + "/nope", status: 404},
		{
			name: "404 stream gone before placement", method: "POST", path: cuesPath, body: validCue, status: 404,
			setup: func(e *apiEnv) { e.fake.addErr = packager.ErrNotFound },
		},
		{
			name: "409 id of another cue", method: "POST", path: cuesPath, body: validCue, status: 409,
			setup: func(e *apiEnv) {
				if w := e.do("POST", cuesPath, mutate(e.t, "product.price.amount", `"79.90"`)); w.Code != 201 {
					e.t.Fatalf("first post %d", w.Code)
				}
			},
			check: wantField("id"),
		},
		{
			name: "409 id the packager has", method: "POST", path: cuesPath, body: validCue, status: 409,
			setup: func(e *apiEnv) { e.fake.addErr = packager.ErrEventExists },
		},
		{
			name: "500 packager failure", method: "POST", path: cuesPath, body: validCue, status: 500,
			setup: func(e *apiEnv) { e.fake.addErr = errors.New("boom") },
		},
		{
			name: "413 oversize", configure: func(a *API) { a.MaxCueBytes = 100 }, method: "POST", path: cuesPath,
			body: validCue, status: 413,
		},
		{name: "405 wrong method", method: "PUT", path: cuesPath, body: validCue, status: 405},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newAPIEnv(t, tc.configure)
			if tc.setup != nil {
				tc.setup(e)
			}
			w := e.do(tc.method, tc.path, tc.body, tc.opts...)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			if w.Code >= 400 && w.Code != 405 {
				var b map[string]any
				if err := json.Unmarshal(w.Body.Bytes(), &b); err != nil || b["error"] == nil {
					t.Fatalf("error body %s", w.Body)
				}
			}
			if tc.check != nil {
				tc.check(t, w)
			}
		})
	}
}

func withToken(tok string) func(*API) { return func(a *API) { a.Token = tok } }

func wantField(f string) func(*testing.T, *httptest.ResponseRecorder) {
	return func(t *testing.T, w *httptest.ResponseRecorder) {
		var b map[string]any
		_ = json.Unmarshal(w.Body.Bytes(), &b)
		if got, _ := b["field"].(string); got != f {
			t.Fatalf("field %q, want %q: %s", got, f, w.Body)
		}
	}
}

func TestAPIIDFreedWhenNotPlaced(t *testing.T) {
	e := newAPIEnv(t, nil)
	e.fake.addErr = packager.ErrNotFound
	if w := e.do("POST", cuesPath, validCue); w.Code != 404 {
		t.Fatalf("status %d", w.Code)
	}
	e.fake.addErr = nil
	if w := e.do("POST", cuesPath, validCue); w.Code != 201 {
		t.Fatalf("retry after a failed placement: %d %s", w.Code, w.Body)
	}
	// An id the packager already had stays used.
	e.fake.addErr = packager.ErrEventExists
	body := cueBody(t, "seen", `"now"`, "")
	if w := e.do("POST", cuesPath, body); w.Code != 409 {
		t.Fatalf("status %d", w.Code)
	}
	e.fake.addErr = nil
	if w := e.do("POST", cuesPath, body); w.Code != 409 {
		t.Fatalf("reused an id the packager had: %d", w.Code)
	}
}

func TestAPIRateLimit(t *testing.T) {
	e := newAPIEnv(t, func(a *API) { a.RatePerSecond = 2 })
	post := func(id string) *httptest.ResponseRecorder {
		return e.do("POST", cuesPath, cueBody(t, id, `"now"`, ""))
	}
	for _, id := range []string{"a", "b"} {
		if w := post(id); w.Code != 201 {
			t.Fatalf("%s: %d %s", id, w.Code, w.Body)
		}
	}
	w := post("c")
	if w.Code != 429 || w.Header().Get("Retry-After") != "1" {
		t.Fatalf("third cue: %d Retry-After %q", w.Code, w.Header().Get("Retry-After"))
	}
	// Another stream has its own bucket.
	e.fake.streams["other"] = true
	if w := e.do("POST", "/api/v1/streams/other/cues", cueBody(t, "c", `"now"`, "")); w.Code != 201 {
		t.Fatalf("other stream: %d", w.Code)
	}
	// Reads are not limited.
	if w := e.do("GET", cuesPath, ""); w.Code != 200 {
		t.Fatalf("GET: %d", w.Code)
	}
	e.fake.advance(500 * time.Millisecond) // one token back at 2/s
	if w := post("c"); w.Code != 201 {
		t.Fatalf("after refill: %d %s", w.Code, w.Body)
	}
	if w := post("d"); w.Code != 429 {
		t.Fatalf("burst exceeded: %d", w.Code)
	}
}

func TestAPIDeleteAndList(t *testing.T) {
	e := newAPIEnv(t, nil)
	for _, c := range []struct{ id, at, dur string }{
		{"active", `"now"`, ""},
		{"fixed", `"now"`, "5000"},
		{"scheduled", `60000`, "10000"},
	} {
		if w := e.do("POST", cuesPath, cueBody(t, c.id, c.at, c.dur)); w.Code != 201 {
			t.Fatalf("%s: %d %s", c.id, w.Code, w.Body)
		}
	}
	list := func() []string {
		w := e.do("GET", cuesPath, "")
		var out struct{ Cues []CueResponse }
		if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil || w.Code != 200 {
			t.Fatalf("list %d %s", w.Code, w.Body)
		}
		var ids []string
		for _, c := range out.Cues {
			ids = append(ids, c.Cue.ID+":"+string(c.State))
		}
		return ids
	}
	if got := strings.Join(list(), " "); got != "active:active fixed:active scheduled:scheduled" {
		t.Fatalf("list %s", got)
	}
	e.fake.advance(6 * time.Second) // "fixed" ran out
	if got := strings.Join(list(), " "); got != "active:active scheduled:scheduled" {
		t.Fatalf("list after 6 s: %s", got)
	}
	if w := e.do("GET", cuesPath+"/fixed", ""); w.Code != 200 || decodeResp(t, w).State != StateEnded {
		t.Fatalf("GET fixed %d %s", w.Code, w.Body)
	}

	// DELETE an active cue: players get an END event.
	w := e.do("DELETE", cuesPath+"/active", "")
	r := decodeResp(t, w)
	if w.Code != 200 || r.State != StateEnded || r.EndMediaTimeMs == nil || *r.EndMediaTimeMs != 16000 ||
		r.EndProgramDateTime != "2025-06-01T18:00:16.000Z" {
		t.Fatalf("DELETE active: %d %s", w.Code, w.Body)
	}
	ev := e.fake.event("live", "active")
	if ev.endBox == nil {
		t.Fatal("no END emsg")
	}
	em := parseEmsg(t, ev.endBox)
	frames, err := DecodeID3(em.MessageData)
	if err != nil || frames[0].Value != `{"v":1,"id":"active","end":true}` || em.PresentationTime != 16000*90 {
		t.Fatalf("END emsg %+v %+v %v", em, frames, err)
	}
	start, end := EmsgIDs(1)
	if em.ID != end || em.ID == start {
		t.Fatalf("END emsg id %d", em.ID)
	}

	// DELETE a scheduled cue: cancelled, no END event.
	w = e.do("DELETE", cuesPath+"/scheduled", "")
	if r := decodeResp(t, w); w.Code != 200 || r.State != StateCancelled || r.EndProgramDateTime != "" {
		t.Fatalf("DELETE scheduled: %d %s", w.Code, w.Body)
	}
	if ev := e.fake.event("live", "scheduled"); !ev.ended || ev.endBox != nil {
		t.Fatalf("scheduled event %+v", ev)
	}
	// Deleting again answers the same.
	if w := e.do("DELETE", cuesPath+"/active", ""); w.Code != 200 || decodeResp(t, w).State != StateEnded {
		t.Fatalf("DELETE again: %d %s", w.Code, w.Body)
	}
	if got := list(); len(got) != 0 {
		t.Fatalf("list after deletes: %v", got)
	}
	// The ids stay used.
	if w := e.do("POST", cuesPath, cueBody(t, "scheduled", `"now"`, "")); w.Code != 409 {
		t.Fatalf("reuse of a cancelled id: %d", w.Code)
	}
}

func TestAPIDeleteStreamGone(t *testing.T) {
	e := newAPIEnv(t, nil)
	if w := e.do("POST", cuesPath, cueBody(t, "a", `"now"`, "")); w.Code != 201 {
		t.Fatal(w.Code)
	}
	e.fake.mu.Lock()
	delete(e.fake.streams, "live")
	e.fake.mu.Unlock()
	// The stream is gone but has cues on record: GET and DELETE still work.
	if w := e.do("GET", cuesPath, ""); w.Code != 200 {
		t.Fatalf("GET %d", w.Code)
	}
	w := e.do("DELETE", cuesPath+"/a", "")
	if r := decodeResp(t, w); w.Code != 200 || r.State != StateEnded || r.EndProgramDateTime == "" {
		t.Fatalf("DELETE %d %s", w.Code, w.Body)
	}
	if w := e.do("POST", cuesPath, validCue); w.Code != 404 {
		t.Fatalf("POST to a gone stream: %d", w.Code)
	}
}

// TestAPILoopbackServer is the default setup against a real client on
// loopback: no token, real remote addresses.
func TestAPILoopbackServer(t *testing.T) {
	e := newAPIEnv(t, nil)
	srv := httptest.NewServer(e.api)
	defer srv.Close()
	resp, err := http.Post(srv.URL+cuesPath, "application/json", bytes.NewReader([]byte(validCue)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 201 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d %s", resp.StatusCode, b)
	}
}

func TestAPILogsAuthMode(t *testing.T) {
	for _, tc := range []struct{ token, want string }{
		{"", "loopback clients only"},
		{"x", "requires a bearer token"},
	} {
		var buf bytes.Buffer
		log := slog.New(slog.NewTextHandler(&buf, nil))
		a := &API{Service: &Service{Store: &Store{}, Timeline: newFake(), Logger: log}, Token: tc.token, Logger: log}
		a.Start()
		if !strings.Contains(buf.String(), tc.want) {
			t.Fatalf("token %q: log %q", tc.token, buf.String())
		}
	}
}
