package cues

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shopcast/shopcast/internal/natstest"
	"github.com/shopcast/shopcast/packager"
)

// owners is the fake stream registry of the tests: which node owns which
// stream.
type owners struct {
	mu sync.Mutex
	m  map[string]int // stream -> node index
}

func (o *owners) set(stream string, node int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if node < 0 {
		delete(o.m, stream)
		return
	}
	o.m[stream] = node
}

// nodeOwns is one node's view of owners.
type nodeOwns struct {
	o    *owners
	node int
}

func (n nodeOwns) Owns(stream string) bool {
	n.o.mu.Lock()
	defer n.o.mu.Unlock()
	owner, ok := n.o.m[stream]
	return ok && owner == n.node
}

// clusterNode is one shopcast node of a test cluster: its packager (a
// fake), cue store, Service and API.
type clusterNode struct {
	t       *testing.T
	metrics *ClusterMetrics
	reg     *prometheus.Registry
	tl      *countingTimeline
	store   *ClusterStore
	svc     *Service
	api     *API
}

type clusterEnv struct {
	t      *testing.T
	nats   *natstest.Cluster
	owners *owners
	clock  *fakeTimeline // the cluster's wall clock
	nodes  []*clusterNode
}

// newClusterEnv starts n NATS servers clustered with JetStream and n
// nodes, node i on NATS member i (reconnecting to the others).
func newClusterEnv(t *testing.T, n int) *clusterEnv {
	t.Helper()
	e := &clusterEnv{t: t, nats: natstest.Start(t, n), owners: &owners{m: map[string]int{}}, clock: newFake()}
	e.clock.cur = 10 * time.Second
	for i := range n {
		e.nodes = append(e.nodes, e.newNode(i))
	}
	return e
}

func (e *clusterEnv) newNode(i int) *clusterNode {
	t := e.t
	t.Helper()
	fake := newFake()
	fake.cur = 10 * time.Second
	tl := &countingTimeline{fakeTimeline: fake}
	metrics, reg := NewClusterMetrics(), prometheus.NewRegistry()
	if err := metrics.Register(reg); err != nil {
		t.Fatal(err)
	}
	store := &ClusterStore{
		Observer:  metrics,
		JetStream: e.nats.JetStream(i),
		Replicas:  min(3, e.nats.Size()),
		OpTimeout: 2 * time.Second,
		Logger:    slog.New(slog.DiscardHandler),
		clock:     e.clock.now,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := store.Open(ctx); err != nil {
		t.Fatal(err)
	}
	svc := &Service{Store: store, Timeline: tl, Owners: nodeOwns{e.owners, i},
		PlaceWait: 5 * time.Second, Logger: testLogger(t), now: e.clock.now, ClusterObserver: metrics}
	api := &API{Service: svc, Logger: svc.Logger, RatePerSecond: 10000, now: e.clock.now}
	svc.Start() // as the wiring does, through the API's Start
	t.Cleanup(func() {
		svc.Close()
		store.Close()
	})
	return &clusterNode{t: t, tl: tl, store: store, svc: svc, api: api, metrics: metrics, reg: reg}
}

// startStream makes node i the owner of stream and starts it there.
func (e *clusterEnv) startStream(i int, stream string) {
	n := e.nodes[i]
	n.tl.mu.Lock()
	n.tl.streams[stream] = true
	n.tl.cur = e.clock.cur
	n.tl.mu.Unlock()
	e.owners.set(stream, i)
	n.svc.StreamStarted(stream)
}

// stopStream ends stream on node i, which loses its ownership.
func (e *clusterEnv) stopStream(i int, stream string) {
	n := e.nodes[i]
	n.tl.mu.Lock()
	delete(n.tl.streams, stream)
	n.tl.mu.Unlock()
	e.owners.set(stream, -1)
}

// metric is the value of a counter, or a histogram's count, the node exports.
func (n *clusterNode) metric(name string, labels ...string) float64 {
	n.t.Helper()
	mfs, err := n.reg.Gather()
	if err != nil {
		n.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		total := 0.0
	metrics:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() != labels[i+1] {
						continue metrics
					}
				}
			}
			if h := m.GetHistogram(); h != nil {
				total += float64(h.GetSampleCount())
			} else {
				total += m.GetCounter().GetValue()
			}
		}
		return total
	}
	n.t.Fatalf("no metric %s", name)
	return 0
}

func (n *clusterNode) do(method, path, body string) *httptest.ResponseRecorder {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r := httptest.NewRequest(method, path, rd)
	r.RemoteAddr = "127.0.0.1:40000"
	w := httptest.NewRecorder()
	n.api.ServeHTTP(w, r)
	return w
}

// list is the node's GET of the stream's cues, by id.
func (n *clusterNode) list(stream string) map[string]*CueResponse {
	n.t.Helper()
	w := n.do("GET", "/api/v1/streams/"+stream+"/cues", "")
	if w.Code != http.StatusOK {
		n.t.Fatalf("GET: %d %s", w.Code, w.Body)
	}
	var out struct {
		Cues []*CueResponse `json:"cues"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
		n.t.Fatal(err)
	}
	m := map[string]*CueResponse{}
	for _, c := range out.Cues {
		if m[c.Cue.ID] != nil {
			n.t.Fatalf("GET lists cue %s twice", c.Cue.ID)
		}
		m[c.Cue.ID] = c
	}
	return m
}

// eventually waits for cond, failing the test after a generous deadline.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition with a deadline
	}
}

// TestClusterCuesConcurrent posts 200 cues across the three nodes at once,
// a third of them to the owner: every POST is answered 201, each cue is
// placed once, by the owner, with a sequence number of its own, and every
// node's GET lists the same 200 cues at the same times.
func TestClusterCuesConcurrent(t *testing.T) {
	e := newClusterEnv(t, 3)
	e.startStream(0, "live")

	const total = 200
	var wg sync.WaitGroup
	var mu sync.Mutex
	ids := map[string]bool{}
	errs := make(chan string, total)
	for i := range total {
		wg.Go(func() {
			n := e.nodes[i%3]
			id := fmt.Sprintf(`"c%d"`, i)
			body := cueBody(t, "x", `"now"`, "600000")
			if i%2 == 0 { // half with ids, half generated
				body = cueBody(t, id[1:len(id)-1], `"now"`, "600000")
			} else {
				var m map[string]json.RawMessage
				_ = json.Unmarshal([]byte(body), &m)
				delete(m, "id")
				b, _ := json.Marshal(m)
				body = string(b)
			}
			w := n.do("POST", cuesPath, body)
			if w.Code != http.StatusCreated {
				errs <- fmt.Sprintf("POST %d on node %d: %d %s", i, i%3, w.Code, w.Body)
				return
			}
			var r CueResponse
			if err := json.Unmarshal(w.Body.Bytes(), &r); err != nil {
				errs <- err.Error()
				return
			}
			if r.State != StateActive || r.ProgramDateTime == "" {
				errs <- fmt.Sprintf("POST %d on node %d answered %s at %q", i, i%3, r.State, r.ProgramDateTime)
			}
			mu.Lock()
			if ids[r.Cue.ID] {
				errs <- "id answered twice: " + r.Cue.ID
			}
			ids[r.Cue.ID] = true
			mu.Unlock()
		})
	}
	wg.Wait()
	close(errs)
	for msg := range errs {
		t.Error(msg)
	}
	if t.Failed() {
		t.FailNow()
	}
	if len(ids) != total {
		t.Fatalf("%d distinct ids, want %d", len(ids), total)
	}

	var lists []map[string]*CueResponse
	for i, n := range e.nodes {
		eventually(t, fmt.Sprintf("node %d to list %d cues", i, total), func() bool { return len(n.list("live")) == total })
		lists = append(lists, n.list("live"))
	}
	// Every cue accepted by node 1 or 2 was placed by node 0, which
	// measured its propagation.
	if got, want := e.nodes[0].metric("shopcast_cue_propagation_seconds"), float64(total-(total+2)/3); got != want {
		t.Errorf("the owner measured %v propagations, want %v", got, want)
	}
	seqs := map[uint32]string{}
	for id := range ids {
		if got := e.nodes[0].tl.added(id); got != 1 {
			t.Errorf("cue %s placed %d times by the owner", id, got)
		}
		for _, n := range e.nodes[1:] {
			if n.tl.added(id) != 0 {
				t.Errorf("cue %s placed by a node that does not own the stream", id)
			}
		}
		want := lists[0][id]
		if want == nil {
			t.Errorf("cue %s missing from node 0's GET", id)
			continue
		}
		for i, l := range lists[1:] {
			got := l[id]
			if got == nil || got.MediaTimeMs != want.MediaTimeMs || got.ProgramDateTime != want.ProgramDateTime || got.State != want.State {
				t.Errorf("cue %s on node %d: %+v, node 0: %+v", id, i+1, got, want)
			}
		}
		rec, err := e.nodes[2].store.Get("live", id)
		if err != nil {
			t.Fatal(err)
		}
		if other, ok := seqs[rec.Seq]; ok {
			t.Errorf("cues %s and %s share sequence number %d", id, other, rec.Seq)
		}
		seqs[rec.Seq] = id
		if ev := e.nodes[0].tl.event("live", id); ev == nil || ev.ev.EmsgID != rec.Seq<<1 {
			t.Errorf("cue %s: the owner's event %+v does not carry emsg id %d", id, ev, rec.Seq<<1)
		}
	}
}

// TestClusterCuesRetryAcrossNodes: a retry of a cue on another node is
// answered with the cue as the owner placed it, and not placed again; the
// same id with another cue is a conflict on every node.
func TestClusterCuesRetryAcrossNodes(t *testing.T) {
	e := newClusterEnv(t, 3)
	e.startStream(0, "live")
	body := cueBody(t, "r1", `"now"`, "30000")
	first := e.nodes[1].do("POST", cuesPath, body)
	if first.Code != http.StatusCreated {
		t.Fatalf("POST: %d %s", first.Code, first.Body)
	}
	for i, n := range e.nodes {
		w := n.do("POST", cuesPath, body)
		if w.Code != http.StatusCreated || w.Body.String() != first.Body.String() {
			t.Errorf("retry on node %d: %d %s, first %s", i, w.Code, w.Body, first.Body)
		}
		other := n.do("POST", cuesPath, cueBody(t, "r1", `"now"`, "5000"))
		if other.Code != http.StatusConflict {
			t.Errorf("another cue with the id on node %d: %d %s", i, other.Code, other.Body)
		}
	}
	if got := e.nodes[0].tl.added("r1"); got != 1 {
		t.Fatalf("placed %d times", got)
	}
}

// TestClusterCueQueuedUntilOwner posts a cue while its stream has no owner:
// it is acknowledged (202, queued), GET on every node shows it, and it is
// placed when the stream starts on a node, at that node's "now".
func TestClusterCueQueuedUntilOwner(t *testing.T) {
	e := newClusterEnv(t, 3)
	e.startStream(0, "live")
	e.stopStream(0, "live") // the owner is gone; the stream is known
	e.nodes[1].svc.PlaceWait = 200 * time.Millisecond

	w := e.nodes[1].do("POST", cuesPath, cueBody(t, "q1", `"now"`, "60000"))
	if w.Code != http.StatusAccepted {
		t.Fatalf("POST without an owner: %d %s", w.Code, w.Body)
	}
	if r := decodeResp(t, w); r.State != StateQueued {
		t.Fatalf("state %s", r.State)
	}
	for i, n := range e.nodes {
		eventually(t, fmt.Sprintf("node %d to list the queued cue", i), func() bool {
			c := n.list("live")["q1"]
			return c != nil && c.State == StateQueued
		})
	}
	// A retry while it waits answers the same.
	if w := e.nodes[2].do("POST", cuesPath, cueBody(t, "q1", `"now"`, "60000")); w.Code != http.StatusAccepted {
		t.Fatalf("retry: %d %s", w.Code, w.Body)
	}
	// Another queued cue, deleted before an owner comes: cancelled, never
	// placed.
	if w := e.nodes[1].do("POST", cuesPath, cueBody(t, "q2", `"now"`, "")); w.Code != http.StatusAccepted {
		t.Fatalf("POST q2: %d %s", w.Code, w.Body)
	}
	eventually(t, "node 0 to see q2", func() bool { return e.nodes[0].list("live")["q2"] != nil })
	if w := e.nodes[0].do("DELETE", cuesPath+"/q2", ""); w.Code != http.StatusOK || decodeResp(t, w).State != StateCancelled {
		t.Fatalf("DELETE of a queued cue: %d %s", w.Code, w.Body)
	}

	e.clock.advance(5 * time.Second)
	e.startStream(2, "live")
	if got := e.nodes[2].tl.added("q1"); got != 1 {
		t.Fatalf("the new owner placed the queued cue %d times", got)
	}
	want := e.clock.cur
	for i, n := range e.nodes {
		eventually(t, fmt.Sprintf("node %d to list the placed cue", i), func() bool {
			c := n.list("live")["q1"]
			return c != nil && c.State == StateActive && c.MediaTimeMs == want.Milliseconds()
		})
	}
	if e.nodes[0].tl.added("q1") != 0 || e.nodes[1].tl.added("q1") != 0 {
		t.Fatal("placed by a node that does not own the stream")
	}
	if e.nodes[2].tl.added("q2") != 0 {
		t.Fatal("the cancelled queued cue was placed")
	}
}

// TestClusterCuesFailover moves a stream from its owner to another node:
// the new owner puts the active cues back for the rest of their duration
// and the scheduled one at the program date-time the first owner resolved,
// so no cue lands on two different times.
func TestClusterCuesFailover(t *testing.T) {
	e := newClusterEnv(t, 3)
	e.startStream(0, "live")
	if w := e.nodes[2].do("POST", cuesPath, cueBody(t, "active", `"now"`, "60000")); w.Code != http.StatusCreated {
		t.Fatalf("POST: %d %s", w.Code, w.Body)
	}
	if w := e.nodes[1].do("POST", cuesPath, cueBody(t, "later", "40000", "10000")); w.Code != http.StatusCreated {
		t.Fatalf("POST: %d %s", w.Code, w.Body)
	}
	scheduled, err := e.nodes[1].store.Get("live", "later")
	if err != nil {
		t.Fatal(err)
	}

	e.stopStream(0, "live") // node 0 dies; its lease runs out
	e.clock.advance(3 * time.Second)
	e.startStream(1, "live")

	act := e.nodes[1].tl.event("live", "active")
	if act == nil || !act.ev.Now || act.ev.Duration != 57*time.Second {
		t.Fatalf("the new owner's active cue: %+v", act)
	}
	sch := e.nodes[1].tl.event("live", "later")
	if sch == nil || sch.ev.Time >= 0 || !sch.ev.Wall.Equal(scheduled.Start) {
		t.Fatalf("the new owner's scheduled cue: %+v, recorded start %v", sch, scheduled.Start)
	}
	for i, n := range e.nodes {
		eventually(t, fmt.Sprintf("node %d to list both cues", i), func() bool {
			l := n.list("live")
			return l["active"] != nil && l["active"].State == StateActive && l["later"] != nil && l["later"].State == StateScheduled
		})
	}
}

// TestClusterCueDeleteOnOtherNode deletes a cue on a node that does not own
// its stream: the owner ends it in its packager (players get the END
// event) and every node shows it ended.
func TestClusterCueDeleteOnOtherNode(t *testing.T) {
	e := newClusterEnv(t, 3)
	e.startStream(0, "live")
	if w := e.nodes[1].do("POST", cuesPath, cueBody(t, "d1", `"now"`, "")); w.Code != http.StatusCreated {
		t.Fatalf("POST: %d %s", w.Code, w.Body)
	}
	e.clock.advance(2 * time.Second)
	e.nodes[0].tl.advance(2 * time.Second)
	w := e.nodes[2].do("DELETE", cuesPath+"/d1", "")
	if w.Code != http.StatusOK {
		t.Fatalf("DELETE: %d %s", w.Code, w.Body)
	}
	r := decodeResp(t, w)
	if r.State != StateEnded || r.EndMediaTimeMs == nil || *r.EndMediaTimeMs != 12000 {
		t.Fatalf("DELETE answered %+v", r)
	}
	if ev := e.nodes[0].tl.event("live", "d1"); ev == nil || !ev.ended || ev.endBox == nil {
		t.Fatalf("the owner did not end the cue: %+v", ev)
	}
	for i, n := range e.nodes {
		eventually(t, fmt.Sprintf("node %d to drop the ended cue", i), func() bool { return n.list("live")["d1"] == nil })
	}
}

// TestClusterCuesMemberLoss stops NATS members under the nodes: with one of
// three down (not the bucket's leader) POSTs keep succeeding on every node;
// with two down they fail with 503 and a clear error; once the members are
// back, every cue that was acknowledged is there.
func TestClusterCuesMemberLoss(t *testing.T) {
	e := newClusterEnv(t, 3)
	e.startStream(0, "live")
	var acked []string
	post := func(node int, id string) *httptest.ResponseRecorder {
		w := e.nodes[node].do("POST", cuesPath, cueBody(t, id, `"now"`, "600000"))
		if w.Code == http.StatusCreated {
			acked = append(acked, id)
		}
		return w
	}
	for i := range 6 {
		if w := post(i%3, fmt.Sprintf("a%d", i)); w.Code != http.StatusCreated {
			t.Fatalf("POST: %d %s", w.Code, w.Body)
		}
	}

	leader, err := e.nats.StreamLeader(e.nodes[0].store.JetStream, "KV_"+DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	var followers []int
	for i := range 3 {
		if e.nats.Name(i) != leader {
			followers = append(followers, i)
		}
	}
	e.nats.Kill(followers[0])
	for i := range 9 {
		if w := post(i%3, fmt.Sprintf("b%d", i)); w.Code != http.StatusCreated {
			t.Fatalf("POST %d on node %d with NATS member %s down: %d %s", i, i%3, e.nats.Name(followers[0]), w.Code, w.Body)
		}
	}

	e.nats.Kill(followers[1])
	for i := range 3 {
		w := post(i, fmt.Sprintf("x%d", i))
		if w.Code != http.StatusServiceUnavailable {
			t.Fatalf("POST on node %d with two of three members down: %d %s", i, w.Code, w.Body)
		}
		if !strings.Contains(w.Body.String(), "no quorum") || w.Header().Get("Retry-After") == "" {
			t.Fatalf("503 body %s, Retry-After %q", w.Body, w.Header().Get("Retry-After"))
		}
		if got := e.nodes[i].metric("shopcast_cue_cluster_store_errors_total"); got < 1 {
			t.Errorf("node %d counted %v store errors", i, got)
		}
	}

	e.nats.Restart(followers[0])
	e.nats.Restart(followers[1])
	for i := range 3 {
		e.nats.WaitJetStream(i)
	}
	for i, n := range e.nodes {
		eventually(t, fmt.Sprintf("node %d to read every acknowledged cue", i), func() bool {
			for _, id := range acked {
				rec, err := n.store.Get("live", id)
				if err != nil || rec.State != statePlaced {
					return false
				}
			}
			return true
		})
	}
	if len(acked) != 15 {
		t.Fatalf("%d cues acknowledged, want 15", len(acked))
	}
	// And the cluster takes cues again.
	eventually(t, "a POST to succeed again", func() bool {
		w := e.nodes[1].do("POST", cuesPath, cueBody(t, "after", `"now"`, "600000"))
		return w.Code == http.StatusCreated
	})
}

// TestClusterStorePlaceOnce: two nodes that both think they own a stream
// (a lease hand-over) cannot both record a placement of one queued cue.
func TestClusterStorePlaceOnce(t *testing.T) {
	e := newClusterEnv(t, 3)
	c := decodeCue(t, cueBody(t, "p1", `"now"`, "1000"))
	rec, err := e.nodes[1].store.Enqueue("live", c, e.clock.now())
	if err != nil || rec.State != StateQueued || rec.Seq != 1 {
		t.Fatalf("Enqueue: %+v %v", rec, err)
	}
	at := packager.EventTime{Media: time.Second, Wall: t0.Add(time.Second)}
	if _, err := e.nodes[0].store.Place("live", "p1", at, e.clock.now()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.nodes[2].store.Place("live", "p1", packager.EventTime{Media: 2 * time.Second}, e.clock.now()); err != ErrPlacedElsewhere {
		t.Fatalf("second Place: %v", err)
	}
	got, err := e.nodes[2].store.Get("live", "p1")
	if err != nil || got.Media != time.Second {
		t.Fatalf("record %+v %v", got, err)
	}
}

func decodeCue(t *testing.T, body string) *Cue {
	t.Helper()
	c, err := DecodeCue([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// testLogger logs errors to the test's output.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelError}))
}

// TestClusterStoreOpensWhenReady: a node whose JetStream is not ready yet
// (its cluster has no quorum) answers cue POSTs 503 and opens its store
// once JetStream is, without a restart.
func TestClusterStoreOpensWhenReady(t *testing.T) {
	srv := natstest.Start(t, 1)
	store := &ClusterStore{JetStream: srv.JetStream(0), Logger: testLogger(t)}
	defer store.Close()
	fake := newFake("live")
	o := &owners{m: map[string]int{"live": 0}}
	svc := &Service{Store: store, Timeline: fake, Owners: nodeOwns{o, 0}, Logger: testLogger(t), now: fake.now}
	defer svc.Close()
	n := &clusterNode{t: t, store: store, svc: svc, api: &API{Service: svc, Logger: svc.Logger, now: fake.now}}
	if w := n.do("POST", cuesPath, cueBody(t, "w1", `"now"`, "")); w.Code != http.StatusServiceUnavailable {
		t.Fatalf("POST before the store is open: %d %s", w.Code, w.Body)
	}
	ready := make(chan struct{})
	opened := make(chan struct{})
	store.OpenWhen(ready, func() { close(opened) })
	close(ready)
	select {
	case <-opened:
	case <-time.After(30 * time.Second):
		t.Fatal("the store did not open")
	}
	if w := n.do("POST", cuesPath, cueBody(t, "w1", `"now"`, "")); w.Code != http.StatusCreated {
		t.Fatalf("POST once open: %d %s", w.Code, w.Body)
	}
}

// TestClusterNoticesForgotten: the nodes that do not own a stream forget
// the notices of its cues, which every node receives.
func TestClusterNoticesForgotten(t *testing.T) {
	e := newClusterEnv(t, 3)
	e.startStream(0, "live")
	for i := range 5 {
		if w := e.nodes[1].do("POST", cuesPath, cueBody(t, fmt.Sprintf("n%d", i), `"now"`, "")); w.Code != http.StatusCreated {
			t.Fatalf("POST: %d %s", w.Code, w.Body)
		}
	}
	for i, n := range e.nodes {
		eventually(t, fmt.Sprintf("node %d to hold no notice", i), func() bool {
			n.store.mu.Lock()
			defer n.store.mu.Unlock()
			return len(n.store.hints) == 0
		})
	}
}
