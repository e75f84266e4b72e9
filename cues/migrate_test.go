package cues

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shopcast/shopcast/packager"
)

// TestMigrate moves a single node's store, with cues in every state over
// two streams, into a three-node cluster: every record arrives once, as it
// was; a second run moves none; the cluster's next cue of a stream takes
// a sequence number after the store's; and the cluster's owner puts the
// migrated active cue back when the stream starts.
func TestMigrate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cues.db")
	store := openStore(t, path)
	defer store.Close()
	fake := newFake("live", "other")
	fake.cur = 10 * time.Second
	svc := &Service{Store: store, Timeline: fake, Logger: slog.New(slog.DiscardHandler), now: fake.now}
	place := func(stream, id, at, dur string) {
		t.Helper()
		if _, err := svc.Place(stream, decodeCue(t, cueBody(t, id, at, dur))); err != nil {
			t.Fatal(err)
		}
	}
	place("live", "active", `"now"`, "600000")
	place("live", "scheduled", "500000", "10000")
	place("live", "ended", `"now"`, "")
	place("live", "cancelled", "900000", "")
	place("other", "o1", `"now"`, "1000")
	place("other", "o2", `"now"`, "")
	for _, id := range []string{"ended", "cancelled"} {
		rec, err := store.Get("live", id)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := svc.End("live", &rec); err != nil {
			t.Fatal(err)
		}
	}
	// A reservation a crash left behind: migrated as it is, for a retry.
	if _, err := store.Reserve("other", decodeCue(t, cueBody(t, "leftover", `"now"`, "")), fake.now()); err != nil {
		t.Fatal(err)
	}
	exported, err := store.Export()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Record{}
	for _, sr := range exported {
		for _, r := range sr.Records {
			want[sr.Stream+"/"+r.Cue.ID] = r
		}
	}
	if len(want) != 7 {
		t.Fatalf("exported %d records", len(want))
	}

	e := newClusterEnv(t, 3)
	rep, err := Migrate(store, e.nodes[1].store)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Streams != 2 || rep.Moved != 7 || rep.Present != 0 || len(rep.Conflicts) != 0 {
		t.Fatalf("first run: %s %v", rep, rep.Conflicts)
	}
	for key, w := range want {
		stream, id, _ := strings.Cut(key, "/")
		for i, n := range e.nodes {
			got, err := n.store.Get(stream, id)
			if err != nil {
				t.Fatalf("node %d: %s: %v", i, key, err)
			}
			gj, _ := json.Marshal(&got)
			wj, _ := json.Marshal(&w)
			if string(gj) != string(wj) {
				t.Fatalf("node %d: %s\n got %s\nwant %s", i, key, gj, wj)
			}
		}
	}
	rep, err = Migrate(store, e.nodes[2].store)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Moved != 0 || rep.Present != 7 || len(rep.Conflicts) != 0 {
		t.Fatalf("second run: %s", rep)
	}

	// The cluster goes on from the store's sequence numbers.
	e.startStream(0, "live")
	if got := e.nodes[0].tl.event("live", "active"); got == nil || !got.ev.Now {
		t.Fatalf("the migrated active cue was not put back: %+v", got)
	}
	if got := e.nodes[0].tl.event("live", "scheduled"); got == nil || !got.ev.Wall.Equal(want["live/scheduled"].Start) {
		t.Fatalf("the migrated scheduled cue: %+v", got)
	}
	if e.nodes[0].tl.event("live", "ended") != nil || e.nodes[0].tl.event("live", "cancelled") != nil {
		t.Fatal("a finished cue was placed again")
	}
	w := e.nodes[1].do("POST", cuesPath, cueBody(t, "new", `"now"`, ""))
	if w.Code != http.StatusCreated {
		t.Fatalf("POST: %d %s", w.Code, w.Body)
	}
	rec, err := e.nodes[1].store.Get("live", "new")
	if err != nil || rec.Seq != 5 {
		t.Fatalf("the first cluster cue: seq %d (want 5, after the store's 4) %v", rec.Seq, err)
	}
	if w := e.nodes[2].do("POST", cuesPath, cueBody(t, "ended", `"now"`, "5000")); w.Code != http.StatusConflict {
		t.Fatalf("a migrated id reused: %d %s", w.Code, w.Body)
	}

	// A record that changed in the cluster since is a conflict, left alone.
	if _, err := e.nodes[0].store.Finish("live", "active", StateEnded, packager.EventTime{}, fake.now()); err != nil {
		t.Fatal(err)
	}
	rep, err = Migrate(store, e.nodes[2].store)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Moved != 0 || len(rep.Conflicts) != 1 || rep.Conflicts[0] != "live/active" {
		t.Fatalf("third run: %s %v", rep, rep.Conflicts)
	}
}
