package cluster

import (
	"net/http"
	"sync"
	"testing"
	"time"
)

// registryLeader names the node that leads the stream registry's bucket.
func registryLeader(t *testing.T, n *node) string {
	t.Helper()
	js := n.srv.Server.Cluster().JetStream()
	st, err := js.Stream(t.Context(), "KV_shopcast-streams")
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(t.Context())
	if err != nil || info.Cluster == nil {
		t.Fatalf("stream info: %v", err)
	}
	return info.Cluster.Leader
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
// never a 404.
func TestClusterOwnerKilled(t *testing.T) {
	nodes := startCluster(t, member{process: true}, member{}, member{})
	ctx := t.Context()
	f := publish(t, ctx, nodes[0], "sale")
	url3 := nodes[2].HTTP + "/live/sale/stream.m3u8"
	waitFor(t, 20*time.Second, "the stream through node 3", func() bool {
		code, _, _ := tryGet(url3)
		return code == http.StatusOK
	})
	_, b, _ := get(t, url3)
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
			code, body, _ := tryGet(url3)
			mu.Lock()
			codes[code]++
			if code == http.StatusOK {
				last = readState(t, body)
			}
			mu.Unlock()
		}
	}()

	// Which node leads the registry's RAFT group: when it is the one
	// killed, the survivors elect a new leader first (NATS: 4 to 9 s).
	leader := registryLeader(t, nodes[1])

	// kill -9 the owner; its ffmpeg loses the connection.
	time.Sleep(time.Second) // a renewal reports the publisher sending
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
	waitFor(t, 30*time.Second, "the stream's first part on node 2", func() bool {
		code, body, _ := tryGet(url2)
		if code != http.StatusOK {
			return false
		}
		after = readState(t, body)
		return after.disc > before.disc
	})
	failover := time.Since(killed)
	t.Logf("failover: %v from kill -9 of the owner to the first part on node 2 (lease TTL 3s; registry leader was %s)", failover, leader)
	if failover > 25*time.Second {
		t.Errorf("failover took %v", failover)
	}
	if after.msn <= before.msn {
		t.Errorf("node 2 numbers from %d, the old owner had reached %d", after.msn, before.msn)
	}
	waitFor(t, 20*time.Second, "the viewer on node 3 to see node 2's stream", func() bool {
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
	if last.msn <= before.msn {
		t.Errorf("media sequence went from %d to %d", before.msn, last.msn)
	}
}
