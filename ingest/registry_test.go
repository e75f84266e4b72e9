package ingest

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
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

// activity is a fake session clock for Publisher.LastActive.
type activity struct {
	mu   sync.Mutex
	last time.Time
}

func (a *activity) touch()              { a.mu.Lock(); a.last = time.Now(); a.mu.Unlock() }
func (a *activity) at() time.Time       { a.mu.Lock(); defer a.mu.Unlock(); return a.last }
func newActivity(t time.Time) *activity { return &activity{last: t} }

// TestRegistryAdmit: who may replace a live session, and how long a
// newcomer waits before it is refused.
func TestRegistryAdmit(t *testing.T) {
	const silence = 300 * time.Millisecond
	for _, tc := range []struct {
		name     string
		old, new Publisher
		oldSince time.Duration // the old session's last activity, ago
		keepLive bool          // the old session keeps receiving
		want     string        // reason logged; "" means refused
	}{
		{name: "same address, live", old: Publisher{Remote: "10.0.0.1:5000"}, new: Publisher{Remote: "10.0.0.1:5001"}, keepLive: true, want: "same address"},
		{name: "same key, other address, live", old: Publisher{Remote: "10.0.0.1:5000", Key: "secret-k"}, new: Publisher{Remote: "10.0.0.2:5000", Key: "secret-k"}, keepLive: true, want: "same stream key"},
		{name: "other key, other address, live", old: Publisher{Remote: "10.0.0.1:5000", Key: "secret-k"}, new: Publisher{Remote: "10.0.0.2:5000", Key: "secret-j"}, keepLive: true},
		{name: "other address, live", old: Publisher{Remote: "10.0.0.1:5000"}, new: Publisher{Remote: "10.0.0.2:5000"}, keepLive: true},
		{name: "other address, unknown activity", old: Publisher{Remote: "10.0.0.1:5000"}, new: Publisher{Remote: "10.0.0.2:5000"}},
		{name: "other address, silent already", old: Publisher{Remote: "10.0.0.1:5000"}, new: Publisher{Remote: "10.0.0.2:5000"}, oldSince: 2 * silence, want: "old session silent"},
		{name: "other address, falls silent while the newcomer waits", old: Publisher{Remote: "10.0.0.1:5000"}, new: Publisher{Remote: "10.0.0.2:5000"}, oldSince: silence / 2, want: "old session silent"},
		{name: "IPv6 same host", old: Publisher{Remote: "[2001:db8::1]:5000"}, new: Publisher{Remote: "[2001:db8::1]:6000"}, keepLive: true, want: "same address"},
		{name: "empty addresses are no proof", old: Publisher{}, new: Publisher{}, keepLive: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var logs bytes.Buffer
			r := &Registry{Logger: slog.New(slog.NewTextHandler(&logs, nil)), TakeoverSilence: silence}
			kicked := make(chan struct{}, 1)
			old := tc.old
			old.Proto = "rtmp"
			old.Kick = func() { kicked <- struct{}{} }
			if tc.keepLive || tc.oldSince > 0 {
				act := newActivity(time.Now().Add(-tc.oldSince))
				old.LastActive = act.at
				if tc.keepLive {
					stop := make(chan struct{})
					defer close(stop)
					go func() {
						tick := time.NewTicker(20 * time.Millisecond)
						defer tick.Stop()
						for {
							select {
							case <-tick.C:
								act.touch()
							case <-stop:
								return
							}
						}
					}()
				}
			}
			relOld, err := r.Admit(context.Background(), "shop", old)
			if err != nil {
				t.Fatal(err)
			}
			defer relOld()

			start := time.Now()
			n := tc.new
			n.Proto = "rtsp"
			relNew, err := r.Admit(context.Background(), "shop", n)
			took := time.Since(start)
			holder, _ := r.Lookup("shop")
			if tc.want == "" {
				if !errors.Is(err, ErrNameInUse) {
					t.Fatalf("newcomer admitted (%v), want ErrNameInUse", err)
				}
				if took < silence || took > silence+2*time.Second {
					t.Errorf("refused after %v, want after the %v wait", took, silence)
				}
				if holder.Proto != "rtmp" || len(kicked) != 0 {
					t.Errorf("holder %+v, kicked %d", holder, len(kicked))
				}
				if strings.Contains(err.Error(), "secret") {
					t.Errorf("error shows the key: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			defer relNew()
			if holder.Proto != "rtsp" || len(kicked) != 1 {
				t.Fatalf("holder %+v, kicked %d", holder, len(kicked))
			}
			if holder.Key != "" {
				t.Errorf("Lookup shows the key")
			}
			if tc.keepLive && took > silence/2 {
				t.Errorf("same publisher waited %v", took)
			}
			if !strings.Contains(logs.String(), "reason=\""+tc.want+"\"") {
				t.Errorf("log %q lacks reason %q", logs.String(), tc.want)
			}
			if strings.Contains(logs.String(), "secret") {
				t.Errorf("log shows the key: %s", logs.String())
			}
		})
	}
}

// TestRegistryAdmitWaitsForRelease: a newcomer from elsewhere that arrives
// while the old session is ending (its connection closed, its publication
// closing) gets the name as soon as the old session releases it.
func TestRegistryAdmitWaitsForRelease(t *testing.T) {
	r := &Registry{TakeoverSilence: 10 * time.Second, Logger: slog.New(slog.DiscardHandler)}
	act := newActivity(time.Now())
	kicks := 0
	relOld, err := r.Admit(context.Background(), "shop", Publisher{Remote: "10.0.0.1:1", LastActive: act.at, Kick: func() { kicks++ }})
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		rel func()
		err error
	}
	done := make(chan result, 1)
	go func() {
		rel, err := r.Admit(context.Background(), "shop", Publisher{Remote: "10.0.0.2:1"})
		done <- result{rel, err}
	}()
	// The newcomer is waiting; the old session ends.
	relOld()
	select {
	case res := <-done:
		if res.err != nil {
			t.Fatal(res.err)
		}
		res.rel()
	case <-time.After(5 * time.Second):
		t.Fatal("the newcomer did not get the released name")
	}
	if kicks != 0 {
		t.Errorf("a released session was kicked")
	}

	// ctx ends the wait.
	relA, _ := r.Admit(context.Background(), "x", Publisher{Remote: "10.0.0.1:1", LastActive: time.Now})
	defer relA()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.Admit(ctx, "x", Publisher{Remote: "10.0.0.2:1"}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled wait: %v", err)
	}

	// A session taken with Claim (a pull) yields to any publisher.
	relPull := r.Claim("pulled", Publisher{Proto: "rtsp-pull", Remote: "cam:554", Kick: func() {}})
	defer relPull()
	relP, err := r.Admit(context.Background(), "pulled", Publisher{Remote: "10.0.0.9:1"})
	if err != nil {
		t.Fatalf("publisher refused by a pull: %v", err)
	}
	relP()
}
