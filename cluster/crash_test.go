package cluster

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/shopcast/shopcast/ingest"
)

// A member in its own process, so that a test can kill -9 it: an
// in-process server's shutdown hands its RAFT leaderships over first,
// which a crash does not. The test binary runs again as the member when
// memberEnv holds its spec.
const memberEnv = "SHOPCAST_CLUSTER_TEST_MEMBER"

func TestMain(m *testing.M) {
	if spec := os.Getenv(memberEnv); spec != "" {
		if err := runMember(spec); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	os.Exit(m.Run())
}

// memberSpec is what the member process is: member Index of a cluster on
// Ports, holding stream Hold for a publisher that keeps sending.
type memberSpec struct {
	Index    int
	Ports    []int
	StoreDir string
	Hold     string
}

// runMember runs the member until it is killed; it prints "holding" once
// it holds its stream.
func runMember(spec string) error {
	var s memberSpec
	if err := json.Unmarshal([]byte(spec), &s); err != nil {
		return fmt.Errorf("member spec: %w", err)
	}
	ctx := context.Background()
	cfg := memberConfig(s.Index, s.Ports, s.StoreDir)
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	n := New(cfg)
	if err := n.Start(ctx); err != nil {
		return err
	}
	<-n.Ready()
	r := NewRegistry(n, testRegistryConfig(n))
	r.Start()
	<-r.Ready()
	if _, err := r.Acquire(ctx, s.Hold, ingest.Publisher{Proto: "rtmp", Remote: "10.0.0.2:5000",
		LastActive: time.Now, Kick: func() {}}); err != nil {
		return err
	}
	fmt.Println("holding")
	select {}
}

// startMemberProcess starts member index as a process holding hold; wait
// returns once it holds the stream.
func startMemberProcess(t *testing.T, index int, ports []int, hold string) (cmd *exec.Cmd, wait func()) {
	t.Helper()
	spec, _ := json.Marshal(memberSpec{Index: index, Ports: ports, StoreDir: t.TempDir(), Hold: hold})
	cmd = exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), memberEnv+"="+string(spec))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	holding := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.TrimSpace(sc.Text()) == "holding" {
				holding <- nil
				return
			}
		}
		holding <- errors.New("the member process ended before it held its stream")
	}()
	return cmd, func() {
		t.Helper()
		select {
		case err := <-holding:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(90 * time.Second):
			t.Fatal("the member process did not hold its stream within 90s")
		}
	}
}

// TestBucketLeaderCrash: kill -9 of the node that owns a stream and leads
// the registry bucket's RAFT group. Nothing can be written until the
// survivors elect a new leader (4-9 s), yet the publisher reconnecting to
// another node is accepted on the members' word within the lease's TTL,
// its lease written once the bucket has a leader, and the survivors'
// own streams are kept throughout.
func TestBucketLeaderCrash(t *testing.T) {
	ports := freePorts(t, 3)
	n2, holding := startMemberProcess(t, 1, ports, "shop")
	in := startMembers(t, ports, []int{0, 2}, nil, slog.New(slog.DiscardHandler)) // n1, n3
	regs := startRegistries(t, in, nil)
	holding()
	n1, n3 := regs[0], regs[1]
	ctx := t.Context()
	waitFor(t, 20*time.Second, "n1 and n3 see n2 hold shop, and every member", func() bool {
		o, st := n1.Lookup("shop")
		o3, st3 := n3.Lookup("shop")
		return st == OwnedElsewhere && o.Node == "n2" && st3 == OwnedElsewhere && o3.Node == "n2" && len(n1.Nodes()) == 3
	})
	o2, _ := n1.Lookup("shop")
	// n1 owns "kept", its publisher sending throughout.
	var pk testPublisher
	pk.sending(t)
	if _, err := n1.Acquire(ctx, "kept", pk.pub("10.0.0.5:5000", "")); err != nil {
		t.Fatal(err)
	}
	mctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := n1.MoveBucketLeader(mctx, "n2"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // renewals report it
	if err := n2.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	var p4 testPublisher
	p4.sending(t)
	t0 := time.Now()
	if _, err := n3.Acquire(ctx, "shop", p4.pub("10.0.0.4:5000", "")); err != nil {
		t.Fatal(err)
	}
	took := time.Since(t0)
	o, st := n3.Resolve(ctx, "shop")
	t.Logf("n3 took the stream %v after kill -9 of n2, the bucket's leader (lease TTL 2s; NATS elects in 4-9s); provisional %v", took, o.Provisional)
	// About the lease's TTL: the members vouch for the claim before any
	// election can end (NATS waits at least 4 s).
	if took > 4*time.Second {
		t.Errorf("took %v, want about the lease TTL", took)
	}
	if st != OwnedHere || !o.Provisional || o.Revision != 0 || o.Discontinuity <= o2.Discontinuity {
		t.Errorf("n3 holds %v %+v, want a provisional lease after n2's discontinuity %d", st, o, o2.Discontinuity)
	}
	disc3 := o.Discontinuity
	// Resolve (what the proxy asks) sees the new owner while the bucket
	// elects: the members say who holds the stream.
	waitFor(t, 2*time.Second, "n1 resolves n3", func() bool {
		o, st = n1.Resolve(ctx, "shop")
		return st == OwnedElsewhere && o.Node == "n3" && o.Discontinuity == disc3
	})
	// Once elected, the bucket takes n3's lease as claimed.
	waitFor(t, 20*time.Second, "n3's lease is written", func() bool {
		rev, _, _ := n3.Held("shop")
		return rev > 0
	})
	t.Logf("n3's lease written %v after the kill", time.Since(t0))
	if o, _ := n3.Resolve(ctx, "shop"); o.Provisional || o.Discontinuity != disc3 {
		t.Errorf("written lease %+v, want discontinuity %d", o, disc3)
	}
	if s := n3.Stats(); s.Provisional != 1 || s.Claims != 1 {
		t.Errorf("n3 stats %+v", s)
	}
	waitFor(t, 10*time.Second, "n1 sees n3's written lease", func() bool {
		o, st := n1.Lookup("shop")
		return st == OwnedElsewhere && o.Node == "n3" && o.Revision > 0
	})
	// n1 kept "kept" through the election on the members' word, and
	// renews it in the bucket again.
	renewed := n1.Stats().Renewals
	waitFor(t, 10*time.Second, "n1 renews again", func() bool { return n1.Stats().Renewals > renewed+2 })
	if pk.kicks.Load() != 0 || p4.kicks.Load() != 0 {
		t.Errorf("kicked: n1's publisher %d times, n3's %d", pk.kicks.Load(), p4.kicks.Load())
	}
	if s := n1.Stats(); s.Kept == 0 || s.Losses != 0 {
		t.Errorf("n1 stats %+v, want a lease kept and none lost", s)
	}
	// And the kept lease is still respected: a stranger is refused.
	var p5 testPublisher
	if _, err := n3.Acquire(ctx, "kept", p5.pub("10.0.0.6:5000", "")); !errors.Is(err, ingest.ErrNameInUse) {
		t.Errorf("a stranger's claim of kept: %v, want ErrNameInUse", err)
	}
}

// TestMinorityGivesUp: a node cut off with a minority of the cluster
// gets no majority's word, so it neither keeps its streams past the
// lease's TTL nor claims one provisionally: at most one side of a
// partition holds a stream.
func TestMinorityGivesUp(t *testing.T) {
	nodes := startCluster(t, 3, nil, slog.New(slog.DiscardHandler))
	regs := startRegistries(t, nodes, nil, func(c *RegistryConfig) { c.ClaimWait = 3 * time.Second })
	ctx := t.Context()
	var p testPublisher
	p.sending(t)
	if _, err := regs[0].Acquire(ctx, "alone", p.pub("10.0.0.1:5000", "")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "n1 knows every member", func() bool { return len(regs[0].Nodes()) == 3 })
	// On a loaded machine the first claim may go by the members' word
	// while the new bucket elects; the partition is cut once it is written.
	waitFor(t, 20*time.Second, "n1's lease is written", func() bool {
		rev, _, _ := regs[0].Held("alone")
		return rev > 0
	})
	before := regs[0].Stats()
	nodes[1].Kill()
	nodes[2].Kill()
	t0 := time.Now()
	waitFor(t, 2*2*time.Second, "n1 gives its stream up", func() bool { return p.kicks.Load() == 1 })
	t.Logf("n1 kicked its publisher %v after losing the majority (lease TTL 2s)", time.Since(t0))
	if s := regs[0].Stats(); s.Losses != 1 || s.Kept != 0 {
		t.Errorf("n1 stats %+v", s)
	}
	var p2 testPublisher
	_, err := regs[0].Acquire(ctx, "other", p2.pub("10.0.0.2:5000", ""))
	if err == nil || errors.Is(err, ingest.ErrNameInUse) {
		t.Fatalf("a claim on the minority side: %v, want the registry's error", err)
	}
	if s := regs[0].Stats(); s.Provisional != before.Provisional {
		t.Errorf("n1 stats %+v, before the partition %+v: a claim went ahead provisionally", s, before)
	}
}
