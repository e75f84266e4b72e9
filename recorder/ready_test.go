package recorder

import (
	"sync"
	"testing"
	"time"

	"github.com/shopcast/shopcast/packager"
)

// TestOnReady: OnReady hears of each recording once it is VOD: at its
// stream's end, or when Start closes one a crash left open; never of a
// session that recorded nothing.
func TestOnReady(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var mu sync.Mutex
	var ready []string
	onReady := func(stream, id string) {
		mu.Lock()
		defer mu.Unlock()
		ready = append(ready, stream+"/"+id)
	}
	got := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), ready...)
	}
	r := startRecorder(t, Config{Dir: dir, OnReady: onReady})
	h := r.Hooks()
	h.OnStreamEnd(packager.StreamEnd{Stream: "sale", Session: 3}) // nothing recorded
	h.OnSegment(seg(7, 100, 0, "init5.mp4", false))
	h.OnStreamEnd(packager.StreamEnd{Stream: "sale", Session: 7})
	deadline := time.Now().Add(10 * time.Second)
	for len(got()) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if g := got(); len(g) != 1 || g[0] != "sale/20261203T114501Z" {
		t.Fatalf("ready %v, want [sale/20261203T114501Z]", g)
	}

	// Left open, as after kill -9: the next Start closes it and tells.
	r2 := New(Config{Dir: dir})
	if err := r2.Start(); err != nil {
		t.Fatal(err)
	}
	h2 := r2.Hooks()
	h2.OnSegment(seg(8, 200, 10, "init9.mp4", false))
	r2.Close()
	startRecorder(t, Config{Dir: dir, OnReady: onReady})
	if g := got(); len(g) != 2 || g[1] != "sale/20261203T114521Z" {
		t.Errorf("ready %v, want the recovered recording second", g)
	}
}
