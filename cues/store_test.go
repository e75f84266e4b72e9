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
