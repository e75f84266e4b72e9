package cluster

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/shopcast/shopcast/internal/e2etest"
)

// registryLeader names the node that leads the stream registry's bucket.
func registryLeader(t *testing.T, n *node) string {
	t.Helper()
	leader, err := n.srv.Server.Registry().BucketLeader(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return leader
}

// playlistState is what a viewer sees in a media playlist.
type playlistState struct {
	msn, disc int
}

func readState(t *testing.T, b []byte) playlistState {
	m := mediaPlaylist(t, b)
	d := 0
	if m.DiscontinuitySequence != nil {
		d = *m.DiscontinuitySequence
	}
	return playlistState{msn: m.MediaSequence + len(m.Segments), disc: d}
}

// TestClusterOwnerKilled kills -9 the node that ingests a stream (a
// shopcast process) while a viewer plays it through node 3: the lease
// expires, the publisher reconnects to node 2 as OBS would (to another
// address), and the viewer's URL on node 3 goes on, with a larger
// discontinuity sequence and media sequence numbers past the old owner's,
// never a 404 or a 502 (a 503 with Retry-After while no node owns it).
// It runs twice: with the killed owner leading the registry bucket's RAFT
// group (the survivors elect a leader before the lease can move: NATS
// waits 4 to 9 s for the dead leader) and with another node leading it.
func TestClusterOwnerKilled(t *testing.T) {
	for _, tt := range []struct {
		name   string
		leader string // the bucket's leader at the kill
	}{
		{"the owner leads the registry", "n1"},
		{"another node leads the registry", "n3"},
	} {
		t.Run(tt.name, func(t *testing.T) { ownerKilled(t, tt.leader) })
	}
}

func ownerKilled(t *testing.T, leader string) {
	nodes := startCluster(t, member{process: true}, member{}, member{})
	ctx := t.Context()
	f := publish(t, ctx, nodes[0], "sale")
	url3 := nodes[2].HTTP + "/live/sale/stream.m3u8"
	e2etest.WaitUntil(t, 20*time.Second, "the stream through node 3", func() bool {
		code, _, _ := tryGet(url3)
		return code == http.StatusOK
	})
	mctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := nodes[1].srv.Server.Registry().MoveBucketLeader(mctx, leader); err != nil {
		t.Fatal(err)
	}
	_, b, _ := e2etest.Get(t, url3)
	before := readState(t, b)

	// The viewer on node 3 reloads its playlist as a player does.
	var mu sync.Mutex
	codes := map[int]int{}
	var last playlistState
	stop := make(chan struct{})
	viewerDone := make(chan struct{})
	go func() {
		defer close(viewerDone)
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			code, body, h := tryGet(url3)
			mu.Lock()
			codes[code]++
			if code == http.StatusOK {
				last = readState(t, body)
			}
			if code == http.StatusServiceUnavailable && h.Get("Retry-After") == "" {
				codes[-1]++ // a 503 without Retry-After
			}
			mu.Unlock()
		}
	}()

	// kill -9 the owner; its ffmpeg loses the connection.
	time.Sleep(time.Second) // a renewal reports the publisher sending
	if l := registryLeader(t, nodes[1]); l != leader {
		t.Fatalf("the registry's leader is %s, not %s", l, leader)
	}
	killed := time.Now()
	nodes[0].kill()
	select {
	case <-f.done:
	case <-time.After(10 * time.Second):
		_ = f.cmd.Process.Kill()
		<-f.done
	}
	// OBS reconnects to the next server of its list: node 2.
	startFFmpeg(t, ctx, nodes[1].RTMP+"/live/sale")
	url2 := nodes[1].HTTP + "/live/sale/stream.m3u8"
	var after playlistState
	e2etest.WaitUntil(t, 30*time.Second, "the stream's first part on node 2", func() bool {
		code, body, _ := tryGet(url2)
		if code != http.StatusOK {
			return false
		}
		after = readState(t, body)
		return after.disc > before.disc
	})
	failover := time.Since(killed)
	t.Logf("failover: %v from kill -9 of the owner to the first part on node 2 (lease TTL 3s; registry leader was %s)", failover, leader)
	// Even when the owner led the registry, the claim goes on the
	// members' word before NATS's election (4-9 s) ends.
	if failover > 8*time.Second {
		t.Errorf("failover took %v", failover)
	}
	if st := nodes[1].srv.Server.Registry().Stats(); (leader == "n1") != (st.Provisional == 1) {
		t.Errorf("node 2's registry %+v: want one provisional claim exactly when the dead owner led the registry", st)
	}
	if after.msn <= before.msn {
		t.Errorf("node 2 numbers from %d, the old owner had reached %d", after.msn, before.msn)
	}
	e2etest.WaitUntil(t, 20*time.Second, "the viewer on node 3 to see node 2's stream", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return last.disc > before.disc
	})
	close(stop)
	<-viewerDone
	mu.Lock()
	defer mu.Unlock()
	t.Logf("viewer on node 3: %v (status: count); discontinuity %d -> %d, next MSN %d -> %d",
		codes, before.disc, last.disc, before.msn, last.msn)
	if codes[http.StatusNotFound] > 0 {
		t.Errorf("the viewer on node 3 got %d 404s during the failover", codes[http.StatusNotFound])
	}
	if codes[http.StatusBadGateway] > 0 {
		t.Errorf("the viewer on node 3 got %d 502s during the failover (a dead owner proxied to)", codes[http.StatusBadGateway])
	}
	if codes[-1] > 0 {
		t.Errorf("%d 503s without Retry-After", codes[-1])
	}
	if last.msn <= before.msn {
		t.Errorf("media sequence went from %d to %d", before.msn, last.msn)
	}
}
