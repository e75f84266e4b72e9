package cluster

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopcast/shopcast/ingest"
)

// startRegistries starts a registry on each node, with short leases.
func startRegistries(t *testing.T, nodes []*Node, active func(node int, name string) bool, tweak ...func(*RegistryConfig)) []*Registry {
	t.Helper()
	var regs []*Registry
	for i, n := range nodes {
		cfg := testRegistryConfig(n)
		for _, f := range tweak {
			f(&cfg)
		}
		if active != nil {
			cfg.Active = func(name string) bool { return active(i, name) }
		}
		r := NewRegistry(n, cfg)
		r.Start()
		t.Cleanup(r.Close)
		regs = append(regs, r)
	}
	for _, r := range regs {
		select {
		case <-r.Ready():
		case <-time.After(60 * time.Second):
			t.Fatal("registry not ready")
		}
	}
	return regs
}

// testRegistryConfig is a test member's registry: short leases.
func testRegistryConfig(n *Node) RegistryConfig {
	return RegistryConfig{
		URL:             "http://" + n.Name() + ".internal:8080",
		TTL:             2 * time.Second,
		Renew:           300 * time.Millisecond,
		TakeoverSilence: time.Second,
		Provisional:     true,
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// testPublisher is an ingest.Publisher that counts its kicks.
type testPublisher struct {
	kicks  atomic.Int32
	active atomic.Int64
}

// sending keeps the publisher active until the test ends.
func (p *testPublisher) sending(t *testing.T) {
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
				p.active.Store(time.Now().UnixNano())
			}
		}
	}()
}

func (p *testPublisher) pub(remote, key string) ingest.Publisher {
	p.active.Store(time.Now().UnixNano())
	return ingest.Publisher{Proto: "rtmp", Remote: remote, Key: key,
		LastActive: func() time.Time { return time.Unix(0, p.active.Load()) },
		Kick:       func() { p.kicks.Add(1) }}
}

func TestRegistryLeases(t *testing.T) {
	nodes := startCluster(t, 3, nil, slog.New(slog.DiscardHandler))
	var activeHere atomic.Bool
	regs := startRegistries(t, nodes, func(node int, name string) bool { return node == 0 && activeHere.Load() })
	ctx := t.Context()

	// n1 claims; every node sees it.
	var p1 testPublisher
	release1, err := regs[0].Acquire(ctx, "shop", p1.pub("10.0.0.1:5000", "key-a"))
	if err != nil {
		t.Fatal(err)
	}
	_, disc1, ok := regs[0].Held("shop")
	if !ok {
		t.Fatal("n1 does not hold its lease")
	}
	for i, r := range regs {
		want := OwnedElsewhere
		if i == 0 {
			want = OwnedHere
		}
		waitFor(t, 10*time.Second, "lookup", func() bool {
			o, st := r.Lookup("shop")
			return st == want && o.Node == "n1" && o.URL == "http://n1.internal:8080" && o.Live
		})
	}

	t.Run("a stranger is refused while the owner's publisher sends", func(t *testing.T) {
		p1.sending(t)
		var p2 testPublisher
		t0 := time.Now()
		_, err := regs[1].Acquire(ctx, "shop", p2.pub("10.0.0.2:5000", "key-b"))
		if !errors.Is(err, ingest.ErrNameInUse) {
			t.Fatalf("err %v, want ErrNameInUse", err)
		}
		if waited := time.Since(t0); waited < time.Second {
			t.Errorf("refused after %v, before the takeover wait", waited)
		}
		if p1.kicks.Load() != 0 {
			t.Error("the owner's publisher was kicked")
		}
		if regs[1].Stats().Refusals != 1 {
			t.Errorf("stats %+v", regs[1].Stats())
		}
	})

	var p2 testPublisher
	var disc2 int64
	p2.sending(t)
	t.Run("the same key takes over, and the old owner is fenced", func(t *testing.T) {
		p1.active.Store(time.Now().UnixNano())
		t0 := time.Now()
		if _, err := regs[1].Acquire(ctx, "shop", p2.pub("10.0.0.2:5000", "key-a")); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(t0); d > time.Second {
			t.Errorf("took %v", d)
		}
		_, disc2, ok = regs[1].Held("shop")
		if !ok || disc2 <= disc1 {
			t.Errorf("n2 holds %v with discontinuity %d after %d", ok, disc2, disc1)
		}
		waitFor(t, 10*time.Second, "the old owner's renewal fails", func() bool {
			_, _, held := regs[0].Held("shop")
			return !held && p1.kicks.Load() == 1
		})
		if regs[0].Stats().Losses != 1 {
			t.Errorf("n1 stats %+v", regs[0].Stats())
		}
		release1() // the kicked session's cleanup changes nothing
		waitFor(t, 10*time.Second, "n3 sees n2", func() bool {
			o, st := regs[2].Lookup("shop")
			return st == OwnedElsewhere && o.Node == "n2"
		})
	})

	t.Run("a publisher that left is replaced at once; the lease ends with the stream", func(t *testing.T) {
		activeHere.Store(true) // n1's packager still holds the stream
		var p3 testPublisher
		rel, err := regs[0].Acquire(ctx, "other", p3.pub("10.0.0.3:1", ""))
		if err != nil {
			t.Fatal(err)
		}
		rel()
		waitFor(t, 10*time.Second, "idle lease", func() bool {
			o, st := regs[2].Lookup("other")
			return st == OwnedElsewhere && !o.Live
		})
		// Kept (idle) while n1 serves it.
		time.Sleep(time.Second)
		if _, st := regs[2].Lookup("other"); st != OwnedElsewhere {
			t.Fatalf("idle lease gone while the stream is active: %v", st)
		}
		activeHere.Store(false)
		waitFor(t, 10*time.Second, "released", func() bool {
			_, st := regs[2].Lookup("other")
			return st == Unowned
		})
	})

	t.Run("a dead owner's lease expires and the stream moves", func(t *testing.T) {
		// n2 holds "shop", its publisher sending: only the expiry frees it.
		// n2 leads the bucket's RAFT group too; an in-process server hands
		// the leadership over as it shuts down (TestBucketLeaderCrash
		// kills a member's process, which does not).
		mctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := regs[0].MoveBucketLeader(mctx, "n2"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond) // a renewal reports it
		nodes[1].Kill()
		var p4 testPublisher
		t0 := time.Now()
		if _, err := regs[2].Acquire(ctx, "shop", p4.pub("10.0.0.4:5000", "")); err != nil {
			t.Fatal(err)
		}
		took := time.Since(t0)
		t.Logf("n3 took the stream %v after n2, the bucket's leader, died (lease TTL 2s; NATS elects in 4-9s)", took)
		if took < time.Second || took > 15*time.Second {
			t.Errorf("took %v", took)
		}
		_, disc3, _ := regs[2].Held("shop")
		// Resolve (what the proxy asks) sees the new owner within a few
		// seconds (the lease TTL) even while n1's watch recreates its
		// consumer: the members say who holds the stream.
		var o Owner
		t1 := time.Now()
		waitFor(t, 2*2*time.Second, "n1 sees n3", func() bool {
			var st State
			o, st = regs[0].Resolve(ctx, "shop")
			return st == OwnedElsewhere && o.Node == "n3"
		})
		t.Logf("n1 resolved n3 %v after n3's claim", time.Since(t1))
		if o.Discontinuity != disc3 || disc3 <= disc2 {
			t.Errorf("discontinuity %d (held %d, n2's %d)", o.Discontinuity, disc3, disc2)
		}
	})
}

func TestRegistryNotReady(t *testing.T) {
	n := New(Config{Name: "x", NATSURL: "nats://127.0.0.1:1"})
	r := NewRegistry(n, RegistryConfig{URL: "http://x"})
	if _, err := r.Acquire(context.Background(), "s", ingest.Publisher{}); !errors.Is(err, ErrNotReady) {
		t.Errorf("err %v", err)
	}
}

// TestResolveAsksTheMembers: when the watch cannot vouch for a lease (its
// owner's heartbeat and renewals stopped coming, as with a consumer that
// died with its NATS server), Resolve takes the owner from the members'
// answers over core NATS, and calls a stream nobody holds Moving instead
// of pointing at the dead owner.
func TestResolveAsksTheMembers(t *testing.T) {
	nodes := startCluster(t, 3, nil, slog.New(slog.DiscardHandler))
	regs := startRegistries(t, nodes, nil)
	ctx := t.Context()
	var p testPublisher
	if _, err := regs[1].Acquire(ctx, "held", p.pub("10.0.0.1:5000", "")); err != nil {
		t.Fatal(err)
	}
	// n1 knows its members from their heartbeats: a query stops once
	// all of them answered.
	waitFor(t, 10*time.Second, "n1 sees n2's lease and every member's heartbeat", func() bool {
		o, st := regs[0].Lookup("held")
		return st == OwnedElsewhere && o.Node == "n2" && len(regs[0].Nodes()) == 3
	})
	// n1's view goes stale: both leases point at n9, whose heartbeat and
	// renewals stopped a minute ago.
	r := regs[0]
	stale := time.Now().Add(-time.Minute)
	r.mu.Lock()
	for _, name := range []string{"held", "nobody"} {
		r.owners[name] = Owner{Stream: name, Node: "n9", URL: "http://n9.internal:8080", Live: true, Revision: 1}
		r.seen[name] = stale
	}
	r.heard["n9"] = stale
	r.mu.Unlock()

	tests := []struct {
		stream string
		state  State
		node   string
	}{
		{"held", OwnedElsewhere, "n2"},
		{"nobody", Moving, ""},
	}
	for _, tt := range tests {
		t.Run(tt.stream, func(t *testing.T) {
			t0 := time.Now()
			o, st := r.Resolve(ctx, tt.stream)
			if st != tt.state || o.Node != tt.node {
				t.Fatalf("Resolve: %v %+v, want %v on %q", st, o, tt.state, tt.node)
			}
			if tt.node != "" {
				_, disc, _ := regs[1].Held(tt.stream)
				if o.URL != "http://n2.internal:8080" || o.Discontinuity != disc || !o.Live {
					t.Errorf("owner %+v (n2 holds discontinuity %d)", o, disc)
				}
			}
			t.Logf("%s: %v after %v", tt.stream, st, time.Since(t0))
		})
	}
	// The proxy's report that n2 does not answer makes n1 ask again, and
	// n2, which is alive, still answers for its lease.
	r.Suspect("n2")
	if o, st := r.Resolve(ctx, "held"); st != OwnedElsewhere || o.Node != "n2" {
		t.Errorf("after Suspect: %v %+v", st, o)
	}
}
