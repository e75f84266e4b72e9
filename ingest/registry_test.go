package ingest

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestRegistry(t *testing.T) {
	var logs bytes.Buffer
	r := NewRegistry(slog.New(slog.NewTextHandler(&logs, nil)))

	kicks := map[string]int{}
	kick := func(id string) func() { return func() { kicks[id]++ } }

	releaseA := r.Claim("shop", Publisher{Proto: "rtmp", Remote: "10.0.0.1:5000", Kick: kick("a")})
	if p, ok := r.Lookup("shop"); !ok || p.Remote != "10.0.0.1:5000" {
		t.Fatalf("Lookup after first claim = %+v, %v", p, ok)
	}
	if logs.Len() != 0 {
		t.Fatalf("first claim logged: %s", logs.String())
	}

	// Same name again: the old session is kicked, not the new one refused.
	releaseB := r.Claim("shop", Publisher{Proto: "rtmp", Remote: "10.0.0.1:5001", Kick: kick("b")})
	if kicks["a"] != 1 || kicks["b"] != 0 {
		t.Fatalf("kicks = %v, want a kicked once", kicks)
	}
	line := logs.String()
	for _, want := range []string{"publisher replaced", "stream=shop", "old_remote=10.0.0.1:5000", "remote=10.0.0.1:5001"} {
		if !strings.Contains(line, want) {
			t.Fatalf("log %q lacks %q", line, want)
		}
	}

	// The kicked session's cleanup must not remove its successor.
	releaseA()
	if p, ok := r.Lookup("shop"); !ok || p.Remote != "10.0.0.1:5001" {
		t.Fatalf("old release removed the new publisher: %+v, %v", p, ok)
	}

	// Other names are independent.
	releaseC := r.Claim("other", Publisher{Remote: "c", Kick: kick("c")})
	if kicks["b"] != 0 {
		t.Fatalf("claiming another name kicked b")
	}

	releaseB()
	releaseB() // idempotent
	if _, ok := r.Lookup("shop"); ok {
		t.Fatal("name still held after release")
	}
	releaseC()

	// The zero value works.
	var zero Registry
	zero.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	rel := zero.Claim("x", Publisher{})
	zero.Claim("x", Publisher{}) // nil Kick is fine
	rel()
	if _, ok := zero.Lookup("x"); !ok {
		t.Fatal("stale release removed the current holder")
	}
}
