package cues

import (
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/shopcast/shopcast/packager"
	bolt "go.etcd.io/bbolt"
)

var t0 = time.Date(2025, 6, 1, 18, 0, 0, 0, time.UTC)

func openStore(t *testing.T, path string) *Store {
	t.Helper()
	s, err := OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStorePersists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cues.db")
	s := openStore(t, path)

	c := exampleCue(t)
	rec, err := s.Reserve("live", c, t0)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Seq != 1 || rec.State != StatePending {
		t.Fatalf("reserved %+v", rec)
	}
	placed, err := s.Place("live", c.ID, packager.EventTime{Media: 12 * time.Second, Wall: t0.Add(time.Minute)}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if placed.StateAt(t0) != StateScheduled || !placed.End.Equal(t0.Add(time.Minute+30*time.Second)) {
		t.Fatalf("placed %+v", placed)
	}
	// A generated id.
	gen := exampleCue(t)
	gen.ID = ""
	grec, err := s.Reserve("live", gen, t0)
	if err != nil {
		t.Fatal(err)
	}
	if !idPattern.MatchString(grec.Cue.ID) || grec.Cue.ID != gen.ID || grec.Seq != 2 {
		t.Fatalf("generated %+v", grec)
	}
	if _, err := s.Place("live", gen.ID, packager.EventTime{Media: time.Second, Wall: t0}, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Finish("live", gen.ID, StateEnded, packager.EventTime{Media: 5 * time.Second, Wall: t0.Add(4 * time.Second)}, t0); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopened: everything is there, and ids stay used.
	s = openStore(t, path)
	defer s.Close()
	got, err := s.Get("live", "sneaker-42")
	if err != nil {
		t.Fatal(err)
	}
	if got.Media != 12*time.Second || !got.Start.Equal(t0.Add(time.Minute)) || got.Seq != 1 ||
		got.Cue.Product.Price.Amount != "89.90" || got.Cue.At.Kind != AtMedia || got.Cue.At.Media != 12*time.Second {
		t.Fatalf("after reopen %+v", got)
	}
	ended, err := s.Get("live", gen.ID)
	if err != nil || ended.StateAt(t0) != StateEnded || ended.EndMedia != 5*time.Second {
		t.Fatalf("ended %+v %v", ended, err)
	}
	again := exampleCue(t)
	if _, err := s.Reserve("live", again, t0); !errors.Is(err, ErrIDUsed) {
		t.Fatalf("reused id: %v", err)
	}
	again.ID = gen.ID
	if _, err := s.Reserve("live", again, t0); !errors.Is(err, ErrIDUsed) {
		t.Fatalf("reused ended id: %v", err)
	}
	// The same id in another stream is a different cue.
	other := exampleCue(t)
	if rec, err := s.Reserve("other", other, t0); err != nil || rec.Seq != 1 {
		t.Fatalf("other stream: %+v %v", rec, err)
	}
	open, err := s.OpenCues("live")
	if err != nil || len(open) != 1 || open[0].Cue.ID != "sneaker-42" {
		t.Fatalf("open cues %+v %v", open, err)
	}
	if !s.Known("live") || s.Known("nope") {
		t.Fatal("Known")
	}
	if _, err := s.Get("nope", "x"); !errors.Is(err, ErrCueNotFound) {
		t.Fatalf("Get unknown: %v", err)
	}
	// The sequence carries on after a reopen.
	third := exampleCue(t)
	third.ID = "third"
	if rec, err := s.Reserve("live", third, t0); err != nil || rec.Seq != 3 {
		t.Fatalf("third %+v %v", rec, err)
	}
}

func TestStoreStates(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "cues.db"))
	defer s.Close()
	place := func(id string, dur int64, start time.Time) Record {
		c := exampleCue(t)
		c.ID, c.DurationMs = id, dur
		if _, err := s.Reserve("live", c, t0); err != nil {
			t.Fatal(err)
		}
		r, err := s.Place("live", id, packager.EventTime{Wall: start}, t0)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	fixed := place("fixed", 10_000, t0)
	open := place("open", 0, t0)
	later := place("later", 0, t0.Add(time.Hour))

	for _, tc := range []struct {
		r    Record
		at   time.Time
		want State
	}{
		{fixed, t0.Add(-time.Second), StateScheduled},
		{fixed, t0, StateActive},
		{fixed, t0.Add(9999 * time.Millisecond), StateActive},
		{fixed, t0.Add(10 * time.Second), StateEnded},
		{open, t0.Add(1000 * time.Hour), StateActive},
		{later, t0, StateScheduled},
	} {
		if got := tc.r.StateAt(tc.at); got != tc.want {
			t.Errorf("%s at %v: %s, want %s", tc.r.Cue.ID, tc.at.Sub(t0), got, tc.want)
		}
	}

	// Cancel, release, fail.
	if r, err := s.Finish("live", "later", StateCancelled, packager.EventTime{}, t0); err != nil || r.StateAt(t0) != StateCancelled {
		t.Fatalf("cancel %+v %v", r, err)
	}
	c := exampleCue(t)
	c.ID = "released"
	if _, err := s.Reserve("live", c, t0); err != nil {
		t.Fatal(err)
	}
	if err := s.Release("live", "released"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reserve("live", c, t0); err != nil {
		t.Fatalf("a released id is free again: %v", err)
	}
	if err := s.Release("live", "open"); err == nil {
		t.Fatal("released a placed cue")
	}
	// The open set drops cues that ran out, on the next write.
	c2 := exampleCue(t)
	c2.ID = "next"
	if _, err := s.Reserve("live", c2, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	recs, _ := s.OpenCues("live")
	ids := map[string]bool{}
	for _, r := range recs {
		ids[r.Cue.ID] = true
	}
	if len(ids) != 3 || !ids["open"] || !ids["released"] || !ids["next"] {
		t.Fatalf("open cues %v, want open, released, next (fixed ran out, later was cancelled)", ids)
	}
}

func TestStoreLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cues.db")
	s := openStore(t, path)
	defer s.Close()
	s2 := &Store{Path: path, LockTimeout: 50 * time.Millisecond}
	if err := s2.Open(); err == nil {
		s2.Close()
		t.Fatal("opened a file another store holds")
	}
}

// TestStorePrunesLegacyOpenSet checks that open-set entries written without
// an end (before ends were kept there) are still pruned by reading the
// record.
func TestStorePrunesLegacyOpenSet(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "cues.db"))
	defer s.Close()
	c := exampleCue(t)
	c.ID, c.DurationMs = "old", 1000
	if _, err := s.Reserve("live", c, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Place("live", "old", packager.EventTime{Wall: t0}, t0); err != nil {
		t.Fatal(err)
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		b, err := streamBucket(tx, "live", false)
		if err != nil {
			return err
		}
		return b.Bucket(bucketOpen).Put([]byte("old"), nil)
	})
	if err != nil {
		t.Fatal(err)
	}
	c2 := exampleCue(t)
	c2.ID = "new"
	if _, err := s.Reserve("live", c2, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	recs, err := s.OpenCues("live")
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].Cue.ID != "new" {
		t.Fatalf("open cues %+v, want only new", recs)
	}
}

// TestStoreConcurrentReserve checks the group-committed reservations: of
// many concurrent reservations of one id exactly one wins, and concurrent
// generated ids and sequence numbers are all distinct.
func TestStoreConcurrentReserve(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "cues.db"))
	defer s.Close()
	const n = 20
	var wg sync.WaitGroup
	errs := make([]error, n)
	recs := make([]Record, n)
	for i := range n {
		dup, gen := exampleCue(t), exampleCue(t)
		dup.ID, gen.ID = "dup", ""
		wg.Go(func() { _, errs[i] = s.Reserve("live", dup, t0) })
		wg.Go(func() {
			var err error
			if recs[i], err = s.Reserve("live", gen, t0); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, ErrIDUsed):
			t.Errorf("reserve dup: %v", err)
		}
	}
	if won != 1 {
		t.Errorf("%d reservations of one id succeeded, want 1", won)
	}
	ids, seqs := map[string]bool{}, map[uint32]bool{}
	for _, r := range recs {
		ids[r.Cue.ID], seqs[r.Seq] = true, true
	}
	if len(ids) != n || len(seqs) != n {
		t.Errorf("%d distinct ids and %d distinct sequence numbers for %d reservations", len(ids), len(seqs), n)
	}
}

// TestStoreReserveRetry covers Reserve of an id the stream has, in each
// state: only a pending reservation of the same cue written by an earlier
// handle (a crash between reserving and placing) is taken over; every
// other case is ErrIDUsed with the record that holds the id.
func TestStoreReserveRetry(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cues.db")
	before := openStore(t, path) // the handle of the process that crashed
	cue := func(id string) *Cue {
		c := exampleCue(t)
		c.ID = id
		return c
	}
	reserve := func(s *Store, id string) Record {
		t.Helper()
		r, err := s.Reserve("live", cue(id), t0)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	at := packager.EventTime{Media: 12 * time.Second, Wall: t0.Add(12 * time.Second)}
	seqs := map[string]uint32{}
	for _, id := range []string{"leftover", "leftover-other", "placed", "ended", "cancelled", "failed"} {
		seqs[id] = reserve(before, id).Seq
	}
	for _, id := range []string{"placed", "ended", "cancelled"} {
		if _, err := before.Place("live", id, at, t0); err != nil {
			t.Fatal(err)
		}
	}
	for id, st := range map[string]State{"ended": StateEnded, "cancelled": StateCancelled, "failed": StateFailed} {
		if _, err := before.Finish("live", id, st, packager.EventTime{}, t0); err != nil {
			t.Fatal(err)
		}
	}
	if err := before.Close(); err != nil {
		t.Fatal(err)
	}

	s := openStore(t, path) // after the restart
	defer s.Close()
	inFlight := reserve(s, "in-flight") // this handle's own reservation
	seqs["in-flight"] = inFlight.Seq
	t1 := t0.Add(time.Minute)

	other := cue("leftover-other")
	other.Product.Price.Amount = "79.90"
	// The same cue written otherwise: another zone for the same instant.
	rezoned := cue("rezoned")
	rezoned.At = At{Kind: AtWall, Wall: t0.Add(time.Hour)}
	stored := *rezoned
	if _, err := s.Reserve("live", &stored, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Place("live", "rezoned", at, t0); err != nil {
		t.Fatal(err)
	}
	rezoned.At.Wall = rezoned.At.Wall.In(time.FixedZone("", 2*3600))

	for _, tc := range []struct {
		name      string
		c         *Cue
		err       error
		wantState State // of the returned record
	}{
		{"leftover of the same cue is taken over", cue("leftover"), nil, StatePending},
		{"leftover taken over once", cue("leftover"), ErrIDUsed, StatePending},
		{"leftover of another cue", other, ErrIDUsed, StatePending},
		{"reservation in flight in this handle", cue("in-flight"), ErrIDUsed, StatePending},
		{"placed", cue("placed"), ErrIDUsed, statePlaced},
		{"ended", cue("ended"), ErrIDUsed, StateEnded},
		{"cancelled", cue("cancelled"), ErrIDUsed, StateCancelled},
		{"failed", cue("failed"), ErrIDUsed, StateFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec, err := s.Reserve("live", tc.c, t1)
			if !errors.Is(err, tc.err) || (tc.err == nil && err != nil) {
				t.Fatalf("err %v, want %v", err, tc.err)
			}
			if rec.Cue.ID != tc.c.ID || rec.State != tc.wantState || rec.Seq != seqs[tc.c.ID] {
				t.Fatalf("record %+v, want %s with seq %d", rec, tc.wantState, seqs[tc.c.ID])
			}
		})
	}
	// The taken-over reservation is this handle's now: it places as any.
	if r, err := s.Place("live", "leftover", at, t1); err != nil || r.StateAt(t1) != StateEnded || r.Seq != seqs["leftover"] || r.Session != "" {
		t.Fatalf("place of the taken-over reservation %+v %v", r, err)
	}
	if r, err := s.Get("live", "rezoned"); err != nil || !sameCue(&r.Cue, rezoned) {
		t.Fatalf("a cue with its at in another zone is not the same cue: %+v %v", r.Cue.At, err)
	}
}

func TestSameCue(t *testing.T) {
	decode := func(body string) *Cue {
		t.Helper()
		c, err := DecodeCue([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	base := decode(cueBody(t, "c1", `"2025-06-01T20:00:00+02:00"`, "30000"))
	for _, tc := range []struct {
		name string
		body string
		same bool
	}{
		{"same bytes", cueBody(t, "c1", `"2025-06-01T20:00:00+02:00"`, "30000"), true},
		{"same instant in UTC", cueBody(t, "c1", `"2025-06-01T18:00:00Z"`, "30000"), true},
		{"fields reordered, spaced", ` {"duration_ms": 30000, "at":"2025-06-01T18:00:00.000Z", "v":1, "id":"c1",` +
			`"type":"product","product":{"title":"Court Sneaker","sku":"SNK-42","price":{"currency":"EUR","amount":"89.90"},` +
			`"image_url":"https://cdn.example.com/a.jpg","url":"https://shop.example.com/p/42?ref=live&x=1","badge":"NEW","discount":"-10%"}}`, true},
		{"another instant", cueBody(t, "c1", `"2025-06-01T18:00:01Z"`, "30000"), false},
		{"another duration", cueBody(t, "c1", `"2025-06-01T18:00:00Z"`, "30001"), false},
		{"no duration", cueBody(t, "c1", `"2025-06-01T18:00:00Z"`, ""), false},
		{"at now", cueBody(t, "c1", `"now"`, "30000"), false},
	} {
		if got := sameCue(base, decode(tc.body)); got != tc.same {
			t.Errorf("%s: sameCue %v, want %v", tc.name, got, tc.same)
		}
	}
	other := decode(cueBody(t, "c1", `"2025-06-01T18:00:00Z"`, "30000"))
	other.Product.Discount = "-20%"
	if sameCue(base, other) {
		t.Error("another discount is the same cue")
	}
}
