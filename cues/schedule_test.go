package cues

import (
	"errors"
	"log/slog"
	"testing"
	"time"
)

func TestDecodeSchedule(t *testing.T) {
	cue := func(id, at string) string {
		return cueBody(t, id, at, "")
	}
	cases := []struct {
		name  string
		body  string
		field string
	}{
		{"not an array", validCue, ""},
		{"bad entry", `[` + cue("a", "1000") + `,` + mutate(t, "product.sku", `""`) + `]`, "[1].product.sku"},
		{"unknown field", `[` + mutate(t, "extra", "1") + `]`, "[0].extra"},
		{"no id", `[` + mutate(t, "id", "") + `]`, "[0].id"},
		{"at now", `[` + cue("a", `"now"`) + `]`, "[0].at"},
		{"at wall", `[` + cue("a", `"2025-06-01T18:00:00Z"`) + `]`, "[0].at"},
		{"repeated id", `[` + cue("a", "1000") + `,` + cue("a", "2000") + `]`, "[1].id"},
		{"trailing", `[]x`, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeSchedule([]byte(tc.body))
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field {
				t.Fatalf("err %v, want field %q", err, tc.field)
			}
		})
	}
	if cues, err := DecodeSchedule([]byte(`[]`)); err != nil || len(cues) != 0 {
		t.Fatalf("empty schedule: %v %v", cues, err)
	}
}

// TestScheduleAndRestart: the schedule file is placed once per stream, and
// after a restart of the server (new store handle, new packager) the cues
// still fire: scheduled ones at their time, active ones for the rest of
// their duration; ended ones do not come back.
func TestScheduleAndRestart(t *testing.T) {
	e := newAPIEnv(t, nil)
	e.fake.cur = 0
	if err := e.svc.LoadSchedule("../testdata/cues_schedule.json"); err != nil {
		t.Fatal(err)
	}
	e.svc.StreamStarted("live")
	want := map[string]time.Duration{"demo-espresso": 5 * time.Second, "demo-grinder": 30 * time.Second, "demo-beans": 55 * time.Second}
	for id, at := range want {
		ev := e.fake.event("live", id)
		if ev == nil || ev.at.Media != at {
			t.Fatalf("%s: %+v", id, ev)
		}
	}
	// A second start of the same stream (the packager kept its events)
	// places nothing twice.
	e.svc.StreamStarted("live")
	if n := len(e.fake.events["live"]); n != 3 {
		t.Fatalf("%d events after a second start", n)
	}
	// A new stream gets the schedule too.
	e.fake.streams["second"] = true
	e.svc.StreamStarted("second")
	if n := len(e.fake.events["second"]); n != 3 {
		t.Fatalf("second stream: %d events", n)
	}

	// 35 s in: espresso (5-25 s) ended, grinder (30-50 s) active, beans
	// (55 s, open) scheduled. A posted cue is left pending: the server
	// stopped between reserving and placing it.
	e.fake.advance(35 * time.Second)
	crash := exampleCue(t)
	crash.ID = "crashed"
	if _, err := e.store.Reserve("live", crash, e.fake.now()); err != nil {
		t.Fatal(err)
	}
	if err := e.store.Close(); err != nil {
		t.Fatal(err)
	}

	// The restart, 2 s later: a new store handle on the same file, a new
	// packager whose stream knows no events.
	store := openStore(t, e.path)
	defer store.Close()
	fake := newFake("live")
	fake.cur = 37 * time.Second
	svc := &Service{Store: store, Timeline: fake, Logger: slog.New(slog.DiscardHandler), now: fake.now}
	svc.StreamStarted("live") // no schedule loaded: stored cues only

	if ev := fake.event("live", "demo-espresso"); ev != nil {
		t.Fatalf("ended cue re-added: %+v", ev.ev)
	}
	g := fake.event("live", "demo-grinder")
	if g == nil || !g.ev.Now || g.ev.Duration != 13*time.Second {
		t.Fatalf("active cue: %+v", g)
	}
	em := parseEmsg(t, g.box)
	start, _ := EmsgIDs(2) // the same emsg id as before the restart
	if em.ID != start || em.EventDuration != 13*90000 {
		t.Fatalf("re-added emsg %+v", em)
	}
	b := fake.event("live", "demo-beans")
	if b == nil || b.ev.Now || b.ev.Time >= 0 || !b.ev.Wall.Equal(t0.Add(55*time.Second)) || b.at.Media != 55*time.Second {
		t.Fatalf("scheduled cue: %+v", b)
	}
	if ev := fake.event("live", "crashed"); ev != nil {
		t.Fatal("a never-acknowledged cue was placed")
	}
	// It stays pending, for a retry of its POST to place (service_test.go).
	rec, err := store.Get("live", "crashed")
	if err != nil || rec.State != StatePending {
		t.Fatalf("crashed reservation %+v %v", rec, err)
	}
	// The grinder keeps its original start and end in the store.
	gr, _ := store.Get("live", "demo-grinder")
	if !gr.Start.Equal(t0.Add(30*time.Second)) || !gr.End.Equal(t0.Add(50*time.Second)) || gr.Media != 37*time.Second {
		t.Fatalf("grinder after restart %+v", gr)
	}
	// The beans cue fires when its time comes.
	fake.advance(20 * time.Second)
	if got, _ := store.Get("live", "demo-beans"); got.StateAt(fake.now()) != StateActive {
		t.Fatalf("beans at 57 s: %s", got.StateAt(fake.now()))
	}
}
