package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	shopcast "github.com/shopcast/shopcast/internal/server"
)

// ClusterCuesConfig sets up ClusterCues.
type ClusterCuesConfig struct {
	// FLV is the file the publisher loops. It is required.
	FLV string
	// Cues is how many cues each run posts, one at a time, 150 to 450 ms
	// apart. It defaults to 100.
	Cues int
}

// ClusterCuesResult is the outcome of ClusterCues: the same cues posted to
// a single node, and to a node of a three-node cluster that does not own
// the stream (the owner ingests it, and the viewer reads the owner).
type ClusterCuesResult struct {
	Source string
	// SingleToPart and ClusterToPart are, per cue, from the POST being sent
	// to the viewer of the owner holding the part with the cue's emsg.
	SingleToPart, ClusterToPart Dist
	// SinglePost and ClusterPost are the POSTs' round trips (in the
	// cluster the 201 waits for the owner's placement).
	SinglePost, ClusterPost Dist
	// Missed counts cues the viewer never saw in a part, both runs.
	SingleMissed, ClusterMissed int
}

func (r *ClusterCuesResult) String() string {
	return fmt.Sprintf("cluster cues (%s): POST sent -> the owner's part with the emsg, read by a blocked viewer of the owner\n"+
		"  single node                     %s\n"+
		"  cluster, POST to a non-owner    %s\n"+
		"  p99 difference %s, p50 difference %s\n"+
		"  POST round trip: single %s\n"+
		"                   cluster %s\n"+
		"  cues missed: single %d, cluster %d",
		r.Source, r.SingleToPart, r.ClusterToPart,
		ms(r.ClusterToPart.P99-r.SingleToPart.P99), ms(r.ClusterToPart.P50-r.SingleToPart.P50),
		r.SinglePost, r.ClusterPost, r.SingleMissed, r.ClusterMissed)
}

// ClusterCues measures what a cluster adds to a cue's way to viewers: cues
// posted to a node that does not own their stream travel through the
// cluster's JetStream (an R3 write, then the owner's placement) before they
// reach the owner's next part.
func ClusterCues(ctx context.Context, cfg ClusterCuesConfig) (*ClusterCuesResult, error) {
	if cfg.Cues <= 0 {
		cfg.Cues = 100
	}
	src, err := loadSource(cfg.FLV)
	if err != nil {
		return nil, err
	}
	res := &ClusterCuesResult{Source: src.desc}

	single, err := startServer()
	if err != nil {
		return nil, err
	}
	res.SingleToPart, res.SinglePost, res.SingleMissed, err = cuesToPart(ctx, src, cfg.Cues, single, single)
	single.close()
	if err != nil {
		return res, fmt.Errorf("single node: %w", err)
	}

	nodes, err := startCluster(3)
	if err != nil {
		return res, err
	}
	defer func() {
		for _, n := range nodes {
			n.close()
		}
	}()
	res.ClusterToPart, res.ClusterPost, res.ClusterMissed, err = cuesToPart(ctx, src, cfg.Cues, nodes[0], nodes[1])
	if err != nil {
		return res, fmt.Errorf("cluster: %w", err)
	}
	return res, nil
}

// startCluster starts n servers in this process, each with an embedded
// NATS server routed to the others', and waits until every node is ready
// (JetStream has a quorum and the cue store is open).
func startCluster(n int) ([]*server, error) {
	ports := make([]int, 2*n)
	for i := range ports {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		ports[i] = p
	}
	var nodes []*server
	closeAll := func() {
		for _, s := range nodes {
			s.close()
		}
	}
	for i := range n {
		s, err := startServerConfig(func(c *shopcast.Config) {
			c.ClusterNode = fmt.Sprintf("n%d", i+1)
			c.ClusterNATSListen = fmt.Sprintf("127.0.0.1:%d", ports[2*i])
			c.ClusterRouteListen = fmt.Sprintf("127.0.0.1:%d", ports[2*i+1])
			c.ClusterRoutes = nil
			for j := range n {
				if j != i {
					c.ClusterRoutes = append(c.ClusterRoutes, fmt.Sprintf("nats://127.0.0.1:%d", ports[2*j+1]))
				}
			}
			c.ClusterStoreDir = filepath.Join(filepath.Dir(c.CueStore), "nats")
		})
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("cluster node %d: %w", i+1, err)
		}
		nodes = append(nodes, s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := newHTTPClient(2)
	for _, s := range nodes {
		if err := waitReadyz(ctx, c, fmt.Sprintf("http://%s/readyz", s.addrs.HTTP)); err != nil {
			closeAll()
			return nil, err
		}
	}
	return nodes, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitReadyz waits until url answers 200.
func waitReadyz(ctx context.Context, c *http.Client, url string) error {
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := c.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %w", url, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// cuesToPart publishes to owner, follows the stream there, posts n cues at
// "now" to poster, and returns, per cue, the time from sending its POST to
// the viewer holding the part with its emsg, and the POSTs' round trips.
func cuesToPart(ctx context.Context, src *source, n int, owner, poster *server) (toPart, post Dist, missed int, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pubErr := make(chan error, 1)
	go func() { pubErr <- publish(ctx, owner.publishURL(), src, nil) }()
	client := newHTTPClient(4)
	if err := waitReady(ctx, client, owner.baseURL()); err != nil {
		return Dist{}, Dist{}, 0, errors.Join(err, drainErr(pubErr))
	}

	var mu sync.Mutex
	inPart := map[string]time.Time{}
	fctx, stopFollow := context.WithCancel(ctx)
	defer stopFollow()
	followed := make(chan struct{})
	go func() {
		defer close(followed)
		followCues(fctx, client, owner.baseURL(), func([]byte, time.Time) {}, func(part []byte, _ time.Duration, at time.Time) {
			mu.Lock()
			for _, m := range emsgCueID.FindAllSubmatch(part, -1) {
				if _, ok := inPart[string(m[1])]; !ok {
					inPart[string(m[1])] = at
				}
			}
			mu.Unlock()
		})
	}()

	sent := map[string]time.Time{}
	var trips []time.Duration
	for i := range n {
		wait := time.Duration(150+rand.IntN(300)) * time.Millisecond
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return Dist{}, Dist{}, 0, ctx.Err()
		}
		id := "c" + strconv.Itoa(i)
		t0 := time.Now()
		at, err := postCue(ctx, client, poster.cuesURL(streamName), id, 500)
		if err != nil {
			return Dist{}, Dist{}, 0, fmt.Errorf("POST %s: %w", id, err)
		}
		sent[id] = t0
		trips = append(trips, at.Sub(t0))
	}
	select {
	case <-time.After(time.Second): // the last cue's part, with a margin
	case <-ctx.Done():
	}
	stopFollow()
	<-followed
	cancel()
	if err := drainErr(pubErr); err != nil {
		return Dist{}, Dist{}, 0, err
	}
	var ds []time.Duration
	for id, t0 := range sent {
		at, ok := inPart[id]
		if !ok {
			missed++
			continue
		}
		ds = append(ds, at.Sub(t0))
	}
	return dist(ds), dist(trips), missed, nil
}
