package cluster

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/shopcast/shopcast/ingest"
)

// ErrNotReady is returned (wrapped) by Acquire before the registry has its
// buckets: JetStream has no quorum yet, or has lost it.
var ErrNotReady = errors.New("the cluster's stream registry is not ready")

// RegistryConfig is the stream registry's settings.
type RegistryConfig struct {
	// URL is this node's advertised internal HTTP URL, written into its
	// leases so that the other nodes can proxy to it. Required.
	URL string
	// Bucket is the key-value bucket of the leases (lease.NAME) and of
	// each stream's last discontinuity sequence number across owners
	// (numbers.NAME, without a TTL). It defaults to "shopcast-streams".
	Bucket string
	// TTL is a lease's lifetime without a renewal: a dead node's streams
	// are free this long after its last renewal. It defaults to 3s (the
	// JetStream minimum is 1s).
	TTL time.Duration
	// Renew is how often a held lease is renewed; well under TTL. It
	// defaults to TTL/3.
	Renew time.Duration
	// TakeoverSilence is the ingest rule (publish_takeover_silence): a
	// publisher on another node that has sent nothing this long may be
	// replaced. It defaults to ingest.DefaultTakeoverSilence.
	TakeoverSilence time.Duration
	// Moving is how long, after a lease expired (its node died), the
	// stream counts as moving to another node: other nodes answer its
	// viewers 503 with Retry-After instead of 404. It defaults to 30s (the
	// grace period, the time a publisher has to come back).
	Moving time.Duration
	// Active reports whether this node's packager still holds the stream
	// (live, in its grace period, or ended but lingering): while it does,
	// a lease whose publisher left is kept (idle), so viewers elsewhere
	// are still sent here. Nil releases the lease when the publisher
	// leaves.
	Active func(name string) bool
	// FirstDiscontinuity, when set, is a floor for the discontinuity
	// sequence of a stream this node claims (the server's local
	// discontinuity store, so that a node joining a cluster keeps its
	// numbers growing).
	FirstDiscontinuity func(name string) int64
	// Load, when set, is this node's load, written with its heartbeat
	// (every Renew, with the lease TTL) for the cluster view.
	Load func() Load
	// RequestTimeout bounds each JetStream request of a claim (read the
	// lease, take a discontinuity number, write the lease): a request
	// sent while the bucket has no RAFT leader gets no answer, and the
	// claim retries once the time is up. It defaults to 1s.
	RequestTimeout time.Duration
	// ClaimWait is how long a publisher's claim keeps retrying while the
	// bucket does not answer at all (no quorum, or a RAFT election after
	// its leader died) before the publisher is refused. It defaults to
	// 15s (NATS elects within 9s).
	ClaimWait time.Duration
	// Provisional lets a lease rest on the word of a majority of the
	// members while the bucket cannot be written (a RAFT election after
	// its leader died), for up to ClaimWait: owners keep their streams,
	// and a publisher reconnecting to this node is accepted at once
	// (provisional.go). Off, a lease lives only in the bucket: owners give
	// their streams up after TTL without it, and claims wait for it.
	Provisional bool
	// QueryTimeout bounds a members query (Resolve, when the watch cannot
	// confirm a lease): how long the answers of every member are waited
	// for. It defaults to 300ms.
	QueryTimeout time.Duration
	// Logger defaults to the node's.
	Logger *slog.Logger
}

// Load is a node's load as its heartbeat reports it.
type Load struct {
	// Streams are the streams its packager holds, Blocked its blocking
	// playlist and part requests waiting now.
	Streams int   `json:"streams"`
	Blocked int64 `json:"blocked"`
}

// NodeInfo is a member as its heartbeat shows it; a node whose heartbeat
// expired (TTL) is not listed.
type NodeInfo struct {
	Name string    `json:"name"`
	URL  string    `json:"url"`
	Load Load      `json:"load"`
	Seen time.Time `json:"seen"`
}

// Owner is a stream's lease as every node sees it.
type Owner struct {
	// Stream is the stream name, Node the owner's name, URL its advertised
	// internal HTTP URL.
	Stream, Node, URL string
	// Live is whether the owner's publisher is connected; a lease that is
	// not live is taken by any publisher at once.
	Live bool
	// Revision is the lease's revision in the bucket: the fencing token.
	// It changes at every renewal.
	Revision uint64
	// Discontinuity is the discontinuity sequence number the owner's
	// packager started the stream with; the next owner uses a larger one.
	Discontinuity int64
	// Since is when the owner claimed the stream.
	Since time.Time
	// Provisional: the owner holds the stream on the members' word, its
	// lease not written yet (provisional.go); Revision is 0.
	Provisional bool
}

// State is what a node knows of a stream's owner.
type State int

// The states of a stream in the registry.
const (
	// Unowned: no lease, none lost recently (never published, or ended).
	Unowned State = iota
	// OwnedHere: this node holds the lease.
	OwnedHere
	// OwnedElsewhere: another node holds the lease.
	OwnedElsewhere
	// Moving: the owner's lease expired less than RegistryConfig.Moving
	// ago; a publisher is expected back on some node.
	Moving
)

// leaseValue is a lease's value in the bucket.
type leaseValue struct {
	Node string    `json:"node"`
	URL  string    `json:"url"`
	Live bool      `json:"live"`
	Disc int64     `json:"disc"`
	When time.Time `json:"since"`
	// Proto and Host are the publisher's protocol and IP address; KeySum
	// the SHA-256 of its stream key (authentication on), for the same
	// takeover rules as the ingest's. SilentMs is how long the publisher
	// had sent nothing at the renewal.
	Proto    string `json:"proto,omitempty"`
	Host     string `json:"host,omitempty"`
	KeySum   string `json:"key_sum,omitempty"`
	SilentMs int64  `json:"silent_ms"`
	// written is when the bucket stored the lease (the entry's time, or
	// when the watch delivered it), not part of the value.
	written time.Time
}

// RegistryStats are the registry's counters since Start.
type RegistryStats struct {
	// Claims are leases won, Refusals publishers refused because another
	// node's publisher kept the stream, Renewals successful renewals, Losses
	// leases lost (taken by another node, or not renewed within TTL).
	Claims, Refusals, Renewals, Losses uint64
	// Provisional are claims accepted on the members' word while the
	// bucket could not be written, Kept leases kept that way through
	// failed renewals (provisional.go).
	Provisional, Kept uint64
}

// Registry is the cluster's record of which node ingests which stream: one
// lease per stream in a JetStream key-value bucket, replicated over the
// node's Replicas. It implements ingest.Leases.
//
// A node claims a stream when a publisher starts (compare-and-set: create,
// or update at the revision it read), renews it every Renew while the
// publisher is connected, and keeps it, not live, while its packager still
// holds the stream. Every write carries a message TTL: a node that dies
// stops renewing, and JetStream itself deletes its leases TTL later (no
// clock of another node is trusted). A renewal is an update at the
// revision of the last one; when it fails because the revision moved (or
// the lease is gone), the node has lost the stream: it kicks its publisher
// and stops serving as the owner. A node that cannot renew for TTL (no
// quorum) does the same, since another node may by then hold the lease.
//
// Takeover rule, for a publisher arriving on this node while another
// node's lease is live: the same as ingest.Registry's for two sessions on
// one node, judged from what the owner writes at each renewal. The
// newcomer takes the stream at once when the lease is not live (its
// publisher left), when it presents the same stream key, when it comes
// from the same IP address, or when the owner's publisher had been silent
// for TakeoverSilence at the last renewal. Otherwise it waits up to
// max(TakeoverSilence, TTL+Renew) for one of these or for the lease to
// expire (a dead owner's always does within that wait), then is refused
// with ingest.ErrNameInUse.
//
// Each node watches the bucket, so Lookup answers from memory, without a
// round trip: the proxy asks it on every request.
type Registry struct {
	node *Node
	cfg  RegistryConfig
	log  *slog.Logger

	claims, refusals, renewals, losses, provisional, kept atomic.Uint64
	// elections counts the bucket's leader-elected advisories.
	elections atomic.Uint64

	mu     sync.Mutex
	kv     jetstream.KeyValue // nil until ready
	owners map[string]Owner
	vals   map[string]leaseValue // the watched leases as written
	seen   map[string]time.Time  // when the watch last delivered each lease
	nodes  map[string]NodeInfo
	heard  map[string]time.Time // when the watch last delivered each node's heartbeat (local clock)
	// suspects are owners the proxy could not reach, with when: their
	// leases are checked with the members until they answer again.
	suspects map[string]time.Time
	// lastUpdate is when the watch last delivered anything; every node's
	// heartbeat passes through it every Renew while it works.
	lastUpdate time.Time
	queries    map[string]*query // members queries, in flight or recent, by stream
	// hbSeq is the bucket sequence of this node's last acknowledged
	// heartbeat, hbAt when it was acknowledged (Unix ns): a watch that
	// does not deliver it soon after is stalled.
	hbSeq   atomic.Uint64
	hbAt    atomic.Int64
	gone    map[string]time.Time // expired leases, for Moving
	changed chan struct{}        // closed and replaced at every change
	leases  map[string]*lease    // this node's
	closed  bool

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	ready  chan struct{}
}

// NewRegistry returns a registry on node; Start makes it work.
func NewRegistry(node *Node, cfg RegistryConfig) *Registry {
	if cfg.Bucket == "" {
		cfg.Bucket = "shopcast-streams"
	}
	if cfg.TTL <= 0 {
		cfg.TTL = 3 * time.Second
	}
	cfg.TTL = max(cfg.TTL, time.Second)
	if cfg.Renew <= 0 || cfg.Renew >= cfg.TTL {
		cfg.Renew = cfg.TTL / 3
	}
	if cfg.TakeoverSilence <= 0 {
		cfg.TakeoverSilence = ingest.DefaultTakeoverSilence
	}
	if cfg.Moving <= 0 {
		cfg.Moving = 30 * time.Second
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = time.Second
	}
	if cfg.ClaimWait <= 0 {
		cfg.ClaimWait = 15 * time.Second
	}
	if cfg.QueryTimeout <= 0 {
		cfg.QueryTimeout = 300 * time.Millisecond
	}
	log := cfg.Logger
	if log == nil {
		log = node.log
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Registry{
		node: node, cfg: cfg, log: log,
		owners: map[string]Owner{}, vals: map[string]leaseValue{}, seen: map[string]time.Time{}, nodes: map[string]NodeInfo{}, gone: map[string]time.Time{}, leases: map[string]*lease{},
		heard: map[string]time.Time{}, suspects: map[string]time.Time{}, queries: map[string]*query{},
		changed: make(chan struct{}), ctx: ctx, cancel: cancel, ready: make(chan struct{}),
	}
}

// SetURL sets RegistryConfig.URL, for a server that learns its address
// only once it listens; it must be called before Start.
func (r *Registry) SetURL(u string) { r.cfg.URL = u }

// URL is this node's advertised URL, as written into its leases.
func (r *Registry) URL() string { return r.cfg.URL }

// Node is the registry's node.
func (r *Registry) Node() *Node { return r.node }

// Start waits in the background for the node's JetStream, then creates
// (or opens) the buckets and starts watching them; Ready is closed then.
// Acquire fails with ErrNotReady until it is.
func (r *Registry) Start() {
	r.wg.Go(r.run)
}

// Ready is closed once the registry works.
func (r *Registry) Ready() <-chan struct{} { return r.ready }

// Close stops the renewals and the watch. Leases are not deleted: a node
// that closes while publishers are connected has closed them first (the
// ingest closes before), and idle leases expire after TTL.
func (r *Registry) Close() {
	r.mu.Lock()
	r.closed = true
	leases := slices.Collect(maps.Values(r.leases))
	r.mu.Unlock()
	r.cancel()
	for _, l := range leases {
		l.stopRenewing()
	}
	r.wg.Wait()
}

// OwnedCount is the number of leases this node holds.
func (r *Registry) OwnedCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.leases)
}

// Stats returns the counters.
func (r *Registry) Stats() RegistryStats {
	return RegistryStats{Claims: r.claims.Load(), Refusals: r.refusals.Load(), Renewals: r.renewals.Load(), Losses: r.losses.Load(),
		Provisional: r.provisional.Load(), Kept: r.kept.Load()}
}

// Lookup returns what this node knows of name's owner, from its watch of
// the bucket (no round trip).
func (r *Registry) Lookup(name string) (Owner, State) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if o, ok := r.owners[name]; ok {
		if o.Node == r.node.Name() {
			return o, OwnedHere
		}
		return o, OwnedElsewhere
	}
	if t, ok := r.gone[name]; ok && time.Since(t) < r.cfg.Moving {
		return Owner{Stream: name}, Moving
	}
	return Owner{Stream: name}, Unowned
}

// Resolve is Lookup, confirmed with the members when the watch cannot
// vouch for it: the lease was not renewed within TTL as the watch saw it,
// its owner's heartbeat is stale or the proxy could not reach it (the
// owner may have died, its expiry not seen yet), or the stream is moving
// and the watch itself has delivered nothing for TTL (its consumer lived
// on a NATS server that died, and is being recreated). The members query
// (see queryMembers) is core NATS: it needs neither a JetStream quorum
// nor the watch. When no member answers for the stream, it is Moving: the
// proxy answers 503 with Retry-After rather than send viewers to a dead
// owner. Only these cases cost a round trip; answers are shared by
// concurrent callers and kept for Renew.
func (r *Registry) Resolve(ctx context.Context, name string) (Owner, State) {
	if o, ok := r.heldOwner(name); ok {
		return o, OwnedHere
	}
	o, st := r.Lookup(name)
	r.mu.Lock()
	now := time.Now()
	var sure bool
	switch st {
	case OwnedHere, Unowned:
		sure = true
	case OwnedElsewhere:
		sure = now.Sub(r.seen[name]) < r.cfg.TTL && r.aliveLocked(o.Node, now)
	case Moving:
		sure = now.Sub(r.lastUpdate) < r.cfg.TTL
	}
	alive := st == OwnedElsewhere && r.aliveLocked(o.Node, now)
	r.mu.Unlock()
	if sure {
		return o, st
	}
	q, err := r.queryOwner(ctx, name)
	switch {
	case err != nil && alive:
		return o, st // nobody to ask, and nothing against the owner
	case err != nil:
		return Owner{Stream: name}, Moving
	case q.found && q.owner.Node == r.node.Name():
		return q.owner, OwnedHere
	case q.found:
		return q.owner, OwnedElsewhere
	}
	return Owner{Stream: name}, Moving
}

// aliveLocked reports whether node's heartbeat came through the watch
// within TTL and the proxy has not found it unreachable since; r.mu is
// held.
func (r *Registry) aliveLocked(node string, now time.Time) bool {
	if t, ok := r.suspects[node]; ok && now.Sub(t) < r.cfg.TTL {
		return false
	}
	return now.Sub(r.heard[node]) < r.cfg.TTL
}

// Suspect records that node did not answer an HTTP request: Resolve
// confirms its leases with the members until its heartbeat comes through
// the watch again.
func (r *Registry) Suspect(node string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.suspects[node] = time.Now()
	for name, q := range r.queries {
		if q.done.isClosed() && q.owner.Node == node {
			delete(r.queries, name)
		}
	}
}

// heldOwner is this node's own lease of name, live or idle, if it holds
// one that it renewed, or the members vouched for (provisional.go),
// within TTL.
func (r *Registry) heldOwner(name string) (Owner, bool) {
	l := r.heldLease(name)
	if l == nil {
		return Owner{}, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ownerLocked(), true
}

// heldLease is heldOwner's lease, or nil.
func (r *Registry) heldLease(name string) *lease {
	r.mu.Lock()
	l := r.leases[name]
	r.mu.Unlock()
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	// An idle lease (the publisher left, the packager still serves the
	// stream) counts: it is renewed, and viewers are still sent here.
	if time.Since(l.lastOK) >= r.cfg.TTL && time.Since(l.vouched) >= r.cfg.TTL {
		return nil
	}
	return l
}

// Owners returns every live or idle lease, sorted by stream name.
func (r *Registry) Owners() []Owner {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := slices.Collect(maps.Values(r.owners))
	slices.SortFunc(out, func(a, b Owner) int { return strings.Compare(a.Stream, b.Stream) })
	return out
}

// Changed returns a channel closed at the next change of any lease (as
// the watch sees it), for callers that wait for a stream to get an owner.
func (r *Registry) Changed() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changed
}

// Held reports whether this node holds name's lease, with its revision
// (the fencing token) and discontinuity sequence number. It is what the
// packager's FirstNumbers and the owner-only work (cue placement) ask.
func (r *Registry) Held(name string) (rev uint64, disc int64, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	l, ok := r.leases[name]
	if !ok {
		return 0, 0, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rev, l.val.Disc, true
}

func (r *Registry) notifyLocked() {
	close(r.changed)
	r.changed = make(chan struct{})
}

// run opens the buckets once JetStream answers, then watches the leases.
func (r *Registry) run() {
	select {
	case <-r.node.Ready():
	case <-r.ctx.Done():
		return
	}
	js := r.node.JetStream()
	var kv jetstream.KeyValue
	for {
		var err error
		kv, err = r.openBuckets(js)
		if err == nil {
			break
		}
		r.log.Warn("cluster: stream registry bucket not ready", "err", err)
		select {
		case <-r.ctx.Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
	nc := r.node.Conn()
	if sub, err := r.serveQueries(nc); err != nil {
		r.log.Warn("cluster: members query not served", "err", err)
	} else {
		defer func() { _ = sub.Unsubscribe() }()
	}
	// A new RAFT leader of the bucket: the watch's consumer may have died
	// with the old one (NATS would notice only after missed heartbeats,
	// 10s), and claims waiting for the bucket may go on at once.
	elected := make(chan *nats.Msg, 8)
	if sub, err := nc.ChanSubscribe(leaderElectedSubject+".KV_"+r.cfg.Bucket, elected); err != nil {
		r.log.Warn("cluster: leader advisories not watched", "err", err)
	} else {
		defer func() { _ = sub.Unsubscribe() }()
	}
	var last uint64 // the last revision the watch delivered
	initial := true
	for {
		why := r.watch(kv, &last, &initial, elected)
		if r.ctx.Err() != nil {
			return
		}
		r.log.Info("cluster: stream registry watch recreated", "reason", why, "from", last+1)
	}
}

// leaderElectedSubject is the prefix of JetStream's advisory that a
// stream has a new RAFT leader (nats-server JSAdvisoryStreamLeaderElectedPre).
const leaderElectedSubject = "$JS.EVENT.ADVISORY.STREAM.LEADER_ELECTED"

// watch watches the bucket from revision last+1 (all of it at first) and
// applies what it delivers, until the registry closes or the watch must
// be recreated: the bucket elected a new leader, or this node's own
// heartbeat, acknowledged by the bucket, did not come through the watch
// within Renew (its consumer is gone). It says why it returned.
func (r *Registry) watch(kv jetstream.KeyValue, last *uint64, initial *bool, elected <-chan *nats.Msg) string {
	watched := []string{leasePrefix + ">", nodePrefix + ">"}
	var opts []jetstream.WatchOpt
	if *last > 0 {
		opts = append(opts, jetstream.ResumeFromRevision(*last+1))
	}
	wctx, cancel := context.WithCancel(r.ctx)
	defer cancel()
	w, err := kv.WatchFiltered(wctx, watched, opts...)
	if err != nil {
		select {
		case <-r.ctx.Done():
		case <-elected:
		case <-time.After(200 * time.Millisecond):
		}
		return fmt.Sprintf("not created: %v", err)
	}
	defer func() { _ = w.Stop() }()
	check := time.NewTicker(r.cfg.Renew / 2)
	defer check.Stop()
	started := time.Now()
	for {
		select {
		case <-r.ctx.Done():
			return "closed"
		case <-elected:
			r.elections.Add(1)
			r.mu.Lock()
			r.notifyLocked() // claims waiting for the bucket retry now
			for _, l := range r.leases {
				l.renewNow() // and leases renew (or are written) now
			}
			r.mu.Unlock()
			return "the bucket elected a new leader"
		case <-check.C:
			if seq := r.hbSeq.Load(); seq > *last && time.Since(started) > r.cfg.Renew && time.Since(time.Unix(0, r.hbAt.Load())) > r.cfg.Renew {
				return fmt.Sprintf("stalled: heartbeat %d acknowledged, %d delivered", seq, *last)
			}
		case e, ok := <-w.Updates():
			if !ok {
				return "ended"
			}
			if e == nil {
				// The bucket's current leases are in: serve lookups.
				if *initial {
					*initial = false
					r.mu.Lock()
					r.kv = kv
					r.lastUpdate = time.Now()
					r.mu.Unlock()
					close(r.ready)
					r.wg.Go(func() { r.heartbeat(kv) })
					r.log.Info("cluster: stream registry ready", "bucket", r.cfg.Bucket, "leases", len(r.Owners()))
				}
				continue
			}
			*last = max(*last, e.Revision())
			r.apply(e)
		}
	}
}

func (r *Registry) openBuckets(js jetstream.JetStream) (jetstream.KeyValue, error) {
	return r.openBucket(js, jetstream.KeyValueConfig{
		Bucket:      r.cfg.Bucket,
		Description: "shopcast stream leases (lease.NAME), discontinuity sequence numbers (numbers.NAME), node heartbeats (node.NAME)",
		History:     1,
		Replicas:    r.node.Replicas(),
		// Message TTLs expire the leases of a dead node; the marker left
		// tells watchers that the lease expired rather than ended.
		LimitMarkerTTL: r.cfg.Moving,
	})
}

// openBucket opens a bucket, creating it if it is missing. Every node
// starting at once creates it: the first wins, the others open it (an
// update of a stream being created concurrently can hang until its
// timeout, hence no CreateOrUpdate).
func (r *Registry) openBucket(js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	ctx, cancel := context.WithTimeout(r.ctx, 3*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, cfg.Bucket)
	if err == nil {
		return kv, nil
	}
	if !errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("bucket %s: %w", cfg.Bucket, err)
	}
	kv, err = js.CreateKeyValue(ctx, cfg)
	if errors.Is(err, jetstream.ErrBucketExists) || errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		kv, err = js.KeyValue(ctx, cfg.Bucket)
	}
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", cfg.Bucket, err)
	}
	return kv, nil
}

// apply records one watched change.
func (r *Registry) apply(e jetstream.KeyValueEntry) {
	r.mu.Lock()
	r.lastUpdate = time.Now()
	r.mu.Unlock()
	if n, ok := strings.CutPrefix(e.Key(), nodePrefix); ok {
		r.applyNode(n, e)
		return
	}
	name, ok := strings.CutPrefix(e.Key(), leasePrefix)
	if !ok {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if q, ok := r.queries[name]; ok && q.done.isClosed() {
		delete(r.queries, name) // the watch knows better now
	}
	switch e.Operation() {
	case jetstream.KeyValuePut:
		var v leaseValue
		if err := json.Unmarshal(e.Value(), &v); err != nil {
			r.log.Warn("cluster: unreadable lease", "stream", name, "err", err)
			return
		}
		if o, ok := r.owners[name]; ok && o.Revision > e.Revision() {
			return // Resolve read a newer one
		}
		r.owners[name] = Owner{Stream: name, Node: v.Node, URL: v.URL, Live: v.Live,
			Revision: e.Revision(), Discontinuity: v.Disc, Since: v.When}
		v.written = time.Now()
		r.vals[name] = v
		r.seen[name] = v.written
		delete(r.gone, name)
	case jetstream.KeyValuePurge: // the TTL expired: the owner died
		if o, ok := r.owners[name]; ok {
			r.log.Warn("cluster: lease expired", "stream", name, "owner", o.Node)
		}
		delete(r.owners, name)
		delete(r.vals, name)
		delete(r.seen, name)
		r.gone[name] = time.Now()
	case jetstream.KeyValueDelete: // the owner ended the stream
		delete(r.owners, name)
		delete(r.vals, name)
		delete(r.seen, name)
		delete(r.gone, name)
	}
	for n, t := range r.gone {
		if time.Since(t) >= r.cfg.Moving {
			delete(r.gone, n)
		}
	}
	for n, q := range r.queries {
		if q.done.isClosed() && time.Since(q.at) >= r.cfg.Moving {
			delete(r.queries, n)
		}
	}
	r.notifyLocked()
}

// applyNode records a watched heartbeat.
func (r *Registry) applyNode(name string, e jetstream.KeyValueEntry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e.Operation() != jetstream.KeyValuePut {
		delete(r.nodes, name)
		delete(r.heard, name)
		return
	}
	var ni NodeInfo
	if json.Unmarshal(e.Value(), &ni) == nil {
		ni.Name, ni.Seen = name, e.Created()
		r.nodes[name] = ni
		r.heard[name] = time.Now()
		delete(r.suspects, name)
	}
}

// Nodes returns the members whose heartbeat is live, by name.
func (r *Registry) Nodes() []NodeInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := slices.Collect(maps.Values(r.nodes))
	slices.SortFunc(out, func(a, b NodeInfo) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// heartbeat writes this node's NodeInfo every Renew, with the lease TTL.
func (r *Registry) heartbeat(kv jetstream.KeyValue) {
	t := time.NewTicker(r.cfg.Renew)
	defer t.Stop()
	for {
		ni := NodeInfo{Name: r.node.Name(), URL: r.cfg.URL}
		if r.cfg.Load != nil {
			ni.Load = r.cfg.Load()
		}
		b, _ := json.Marshal(ni)
		ctx, cancel := context.WithTimeout(r.ctx, r.cfg.Renew)
		// A plain put: only this node writes its key.
		pa, err := r.node.JetStream().PublishMsg(ctx, &nats.Msg{Subject: "$KV." + r.cfg.Bucket + "." + nodePrefix + r.node.Name(), Data: b},
			jetstream.WithMsgTTL(r.cfg.TTL))
		cancel()
		if err == nil {
			r.hbAt.Store(time.Now().UnixNano())
			r.hbSeq.Store(pa.Sequence)
		}
		if err != nil && r.ctx.Err() == nil {
			r.log.Debug("cluster: heartbeat not written", "err", err)
		}
		select {
		case <-r.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// bucket returns the bucket, or ErrNotReady.
func (r *Registry) bucket() (jetstream.KeyValue, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, fmt.Errorf("%w: closed", ErrNotReady)
	}
	if r.kv == nil {
		return nil, ErrNotReady
	}
	return r.kv, nil
}

// The bucket's keys: a stream's lease, and its last discontinuity
// sequence number (kept across owners, without a TTL).
const (
	leasePrefix   = "lease."
	numbersPrefix = "numbers."
	nodePrefix    = "node."
)

// Acquire implements ingest.Leases: it claims name for this node on behalf
// of p by the takeover rule of Registry, waiting for the holder as
// described there.
func (r *Registry) Acquire(ctx context.Context, name string, p ingest.Publisher) (release func(), err error) {
	kv, err := r.bucket()
	if err != nil {
		return nil, err
	}
	me := r.newValue(p)
	t0 := time.Now()
	deadline := t0.Add(max(r.cfg.TakeoverSilence, r.cfg.TTL+r.cfg.Renew))
	// The local floor of the discontinuity number is taken once: every
	// call reserves numbers.
	floor := int64(0)
	if r.cfg.FirstDiscontinuity != nil {
		floor = r.cfg.FirstDiscontinuity(name)
	}
	var lastErr, lastRefusal error
	// After the bucket did not answer, attempts are provisional only for
	// a TTL (and a request's timeout, for a renewal delivered late) or
	// until the bucket elects a leader: the dead owner's lease
	// can be taken on the members' word the moment it expires, not a
	// request timeout later. (A watch update does not say the bucket is
	// back: it may have been written before it stopped answering.)
	var bucketDown time.Time
	var downElections uint64
	for {
		changed := r.Changed()
		var (
			ok, skip bool
			rev      uint64
			why      string
			read     *leaseValue
			err      error
		)
		if skip = r.cfg.Provisional && lastErr != nil && time.Now().Before(bucketDown) && r.elections.Load() == downElections; skip {
			err = lastErr
		} else {
			ok, rev, why, read, err = r.claimable(ctx, kv, name, me)
		}
		if err == nil && ok && r.cfg.Provisional && (read == nil || read.Node != me.Node) {
			if h, hwhy := r.heldByMember(name, me); h {
				ok, why = false, hwhy+" (a member keeps the stream while the bucket elects)"
			}
		}
		// held: the lease is another node's, its publisher sending; the
		// only case a publisher is refused for at the takeover deadline.
		held := err == nil && !ok
		if err == nil && ok {
			var l *lease
			l, err = r.claim(ctx, kv, name, me, rev, floor, p)
			if err == nil {
				r.claims.Add(1)
				r.log.Info("cluster: stream claimed", "stream", name, "revision", l.rev, "discontinuity", l.val.Disc, "reason", why,
					"after", time.Since(t0).Round(time.Millisecond))
				return l.release, nil
			}
		}
		if err != nil && !isConflict(err) {
			// The bucket did not answer: the members may vouch instead.
			if !skip {
				bucketDown = time.Now().Add(r.cfg.TTL + r.cfg.RequestTimeout)
				downElections = r.elections.Load()
			}
			if read == nil {
				read = r.watchedValue(name)
			}
			l, perr := r.claimProvisionally(ctx, kv, name, me, read, floor, p)
			if perr == nil {
				r.log.Info("cluster: stream claimed provisionally, the registry bucket does not answer", "stream", name,
					"discontinuity", l.val.Disc, "err", err, "after", time.Since(t0).Round(time.Millisecond))
				return l.release, nil
			}
			if lastRefusal == nil || lastRefusal.Error() != perr.Error() {
				r.log.Info("cluster: stream not claimed provisionally", "stream", name, "reason", perr)
			}
			lastRefusal = perr
		}
		if err != nil {
			if lastErr == nil || lastErr.Error() != err.Error() {
				r.log.Info("cluster: claim not written yet, retrying", "stream", name, "err", err)
			}
			lastErr = err
		}
		// A claim that may take the stream but could not write (the
		// bucket without a leader during an election, or a race lost to
		// a claim that the next read shows) retries up to ClaimWait.
		if !time.Now().Before(deadline) {
			if held {
				r.refusals.Add(1)
				return nil, fmt.Errorf("%w: %s", ingest.ErrNameInUse, why)
			}
			if time.Since(t0) >= r.cfg.ClaimWait {
				return nil, fmt.Errorf("cluster registry: not claimed within %v: %w", r.cfg.ClaimWait, lastErr)
			}
		}
		wait := 250 * time.Millisecond
		if u := time.Until(deadline); u > 0 {
			wait = min(u, wait)
		}
		t := time.NewTimer(wait)
		select {
		case <-changed:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
		t.Stop()
	}
}

// newValue is the lease this node writes for publisher p.
func (r *Registry) newValue(p ingest.Publisher) leaseValue {
	v := leaseValue{Node: r.node.Name(), URL: r.cfg.URL, Live: true, Proto: p.Proto}
	if h, _, err := net.SplitHostPort(p.Remote); err == nil {
		v.Host = h
	}
	if p.Key != "" {
		s := sha256.Sum256([]byte(p.Key))
		v.KeySum = hex.EncodeToString(s[:])
	}
	return v
}

// claimable reads name's lease and says whether me may take it: at which
// revision (0: create), and why; or, when it may not, why not. It also
// returns the lease read, if any.
func (r *Registry) claimable(ctx context.Context, kv jetstream.KeyValue, name string, me leaseValue) (bool, uint64, string, *leaseValue, error) {
	gctx, cancel := context.WithTimeout(ctx, r.cfg.RequestTimeout)
	defer cancel()
	e, err := kv.Get(gctx, leasePrefix+name)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return true, 0, "free", nil, nil
	}
	if err != nil {
		return false, 0, "", nil, err
	}
	var v leaseValue
	if err := json.Unmarshal(e.Value(), &v); err != nil {
		return true, e.Revision(), "unreadable lease", nil, nil
	}
	v.written = e.Created()
	ok, why := r.takeable(v, me)
	if !ok {
		return false, 0, why, &v, nil
	}
	return true, e.Revision(), why, &v, nil
}

// constantTimeEqual compares two stream key digests.
func constantTimeEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// watchedValue is name's lease as the watch last delivered it, if any.
func (r *Registry) watchedValue(name string) *leaseValue {
	r.mu.Lock()
	defer r.mu.Unlock()
	if v, ok := r.vals[name]; ok {
		return &v
	}
	return nil
}

// claim writes this node's lease at rev (0: create), after taking a
// discontinuity sequence number larger than every owner's before.
func (r *Registry) claim(ctx context.Context, kv jetstream.KeyValue, name string, v leaseValue, rev uint64, floor int64, p ingest.Publisher) (*lease, error) {
	// A lease of this node's own (a publisher coming back here): stop its
	// renewals first, so that they do not see our write as a loss.
	r.mu.Lock()
	old := r.leases[name]
	r.mu.Unlock()
	if old != nil {
		old.stopRenewing()
		old.mu.Lock()
		if rev == 0 || old.rev == rev {
			rev = old.rev
		}
		old.mu.Unlock()
	}
	// Two requests, each bounded: the discontinuity number, then the
	// lease.
	dctx, cancel := context.WithTimeout(ctx, r.cfg.RequestTimeout)
	disc, err := r.nextDiscontinuity(dctx, kv, name, floor)
	cancel()
	if err != nil {
		return nil, err
	}
	v.Disc, v.When = disc, time.Now().UTC()
	wctx, cancel := context.WithTimeout(ctx, r.cfg.RequestTimeout)
	newRev, err := r.write(wctx, kv, name, v, rev)
	cancel()
	if err != nil {
		return nil, err
	}
	l := &lease{r: r, name: name, val: v, rev: newRev, lastOK: time.Now(), pub: p,
		stop: make(chan struct{}), done: make(chan struct{}), poke: make(chan struct{}, 1)}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, fmt.Errorf("%w: closed", ErrNotReady)
	}
	r.leases[name] = l
	r.mu.Unlock()
	go l.renew()
	return l, nil
}

// nextDiscontinuity takes the next discontinuity sequence number of name:
// one more than the last owner's, at least floor (the local one).
func (r *Registry) nextDiscontinuity(ctx context.Context, nums jetstream.KeyValue, name string, floor int64) (int64, error) {
	for range 10 {
		var rev uint64
		next := floor
		e, err := nums.Get(ctx, numbersPrefix+name)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return 0, fmt.Errorf("discontinuity of %s: %w", name, err)
		default:
			var n struct {
				Disc int64 `json:"disc"`
			}
			if json.Unmarshal(e.Value(), &n) == nil {
				next = max(next, n.Disc+1)
			}
			rev = e.Revision()
		}
		b, _ := json.Marshal(map[string]int64{"disc": next})
		if rev == 0 {
			_, err = nums.Create(ctx, numbersPrefix+name, b)
		} else {
			_, err = nums.Update(ctx, numbersPrefix+name, b, rev)
		}
		if err == nil {
			return next, nil
		}
		if !isConflict(err) && !errors.Is(err, jetstream.ErrKeyExists) {
			return 0, fmt.Errorf("discontinuity of %s: %w", name, err)
		}
	}
	return 0, fmt.Errorf("discontinuity of %s: too many concurrent claims", name)
}

// write puts v as name's lease, expected at revision rev (0: absent), with
// the lease TTL.
func (r *Registry) write(ctx context.Context, kv jetstream.KeyValue, name string, v leaseValue, rev uint64) (uint64, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return 0, err
	}
	if rev == 0 {
		// Create also takes a key whose last message is a delete or an
		// expiry marker.
		return kv.Create(ctx, leasePrefix+name, b, jetstream.KeyTTL(r.cfg.TTL))
	}
	// KeyValue.Update takes no TTL: the same compare-and-set publish,
	// with one.
	pa, err := r.node.JetStream().PublishMsg(ctx, &nats.Msg{Subject: "$KV." + r.cfg.Bucket + "." + leasePrefix + name, Data: b},
		jetstream.WithExpectLastSequencePerSubject(rev), jetstream.WithMsgTTL(r.cfg.TTL))
	if err != nil {
		return 0, err
	}
	return pa.Sequence, nil
}

// isConflict reports a compare-and-set that lost: the revision moved.
func isConflict(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant
	}
	return errors.Is(err, jetstream.ErrKeyExists)
}

// lease is one lease this node holds.
type lease struct {
	r    *Registry
	name string
	pub  ingest.Publisher

	mu     sync.Mutex
	val    leaseValue
	rev    uint64
	lastOK time.Time // when the bucket last acknowledged it
	left   bool      // the publisher released it
	// provisional: claimed on the members' word, not written yet; since
	// when. vouched is when the members last vouched for it, kept whether
	// it is kept that way through failed renewals (provisional.go).
	provisional bool
	since       time.Time
	vouched     time.Time
	kept        bool

	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
	poke     chan struct{} // renew now
}

// ownerLocked is the lease as an Owner; l.mu is held.
func (l *lease) ownerLocked() Owner {
	return Owner{Stream: l.name, Node: l.r.node.Name(), URL: l.val.URL, Live: l.val.Live && !l.left,
		Revision: l.rev, Discontinuity: l.val.Disc, Since: l.val.When, Provisional: l.provisional}
}

// answerLocked is the lease as a members query answers it; l.mu is held.
func (l *lease) answerLocked() leaseAnswer {
	o := l.ownerLocked()
	silent := l.val.SilentMs
	if !l.left && l.pub.LastActive != nil {
		silent = time.Since(l.pub.LastActive()).Milliseconds()
	}
	return leaseAnswer{Node: o.Node, Held: true, URL: o.URL, Live: o.Live, Revision: o.Revision, Disc: o.Discontinuity,
		Since: o.Since, Provisional: o.Provisional, Proto: l.val.Proto, Host: l.val.Host, KeySum: l.val.KeySum, SilentMs: silent}
}

// renewNow asks for a renewal (or a provisional lease's write) at once.
func (l *lease) renewNow() {
	select {
	case l.poke <- struct{}{}:
	default:
	}
}

// release is the ingest's release: the publisher left. The lease is kept,
// not live, while the packager holds the stream.
func (l *lease) release() {
	l.mu.Lock()
	l.left = true
	l.val.Live = false
	l.mu.Unlock()
	l.renewNow()
}

// stopRenewing ends the renewals and waits for them.
func (l *lease) stopRenewing() {
	l.stopOnce.Do(func() { close(l.stop) })
	<-l.done
}

// renew renews the lease every Renew until it is stopped, deleted or lost;
// a provisional lease is written first (confirm). While the bucket does
// not answer, the lease is kept on the members' word (provisional.go).
func (l *lease) renew() {
	r := l.r
	defer close(l.done)
	defer func() {
		r.mu.Lock()
		if r.leases[l.name] == l {
			delete(r.leases, l.name)
		}
		r.mu.Unlock()
	}()
	t := time.NewTicker(r.cfg.Renew)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		case <-l.poke:
		}
		l.mu.Lock()
		left, rev, prov := l.left, l.rev, l.provisional
		if !left && l.pub.LastActive != nil {
			l.val.SilentMs = time.Since(l.pub.LastActive()).Milliseconds()
		}
		v := l.val
		l.mu.Unlock()
		kv, err := r.bucket()
		if err != nil {
			return
		}
		if left && (r.cfg.Active == nil || !r.cfg.Active(l.name)) {
			if !prov {
				ctx, cancel := context.WithTimeout(r.ctx, r.cfg.TTL)
				err := kv.Delete(ctx, leasePrefix+l.name, jetstream.LastRevision(rev))
				cancel()
				if err != nil && !isConflict(err) {
					r.log.Warn("cluster: lease not deleted, it expires", "stream", l.name, "err", err)
				}
			}
			r.log.Info("cluster: stream released", "stream", l.name)
			return
		}
		if prov {
			err = r.confirm(r.ctx, kv, l)
			if err == nil {
				r.claims.Add(1)
			}
		} else {
			ctx, cancel := context.WithTimeout(r.ctx, r.cfg.Renew)
			var newRev uint64
			newRev, err = r.write(ctx, kv, l.name, v, rev)
			if isConflict(err) {
				newRev, err = r.rewrite(ctx, kv, l.name, v)
			}
			cancel()
			select {
			case <-l.stop:
				// Stopped while writing: the next holder reads the revision.
				if err == nil {
					l.mu.Lock()
					l.rev = newRev
					l.mu.Unlock()
				}
				return
			default:
			}
			if err == nil {
				l.mu.Lock()
				l.rev, l.lastOK = newRev, time.Now()
				l.mu.Unlock()
			}
		}
		if err == nil {
			r.renewals.Add(1)
			l.mu.Lock()
			if l.kept {
				l.kept = false
				r.log.Info("cluster: lease renewed in the bucket again", "stream", l.name)
			}
			l.mu.Unlock()
			continue
		}
		if errors.Is(err, errFenced) {
			l.lost(err.Error())
			return
		}
		if why := l.keep(err); why != "" {
			l.lost(why)
			return
		}
	}
}

// rewrite is a renewal whose compare-and-set lost. When the bucket
// expired the lease (it was kept on the members' word past TTL) or the
// renewal before was written but not acknowledged, the key is created or
// written again; another node's lease there fences this node (errFenced).
func (r *Registry) rewrite(ctx context.Context, kv jetstream.KeyValue, name string, v leaseValue) (uint64, error) {
	e, err := kv.Get(ctx, leasePrefix+name)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		rev, err := r.write(ctx, kv, name, v, 0)
		if isConflict(err) {
			return 0, fmt.Errorf("%w: another node took the stream", errFenced)
		}
		return rev, err
	case err != nil:
		return 0, err
	}
	var cur leaseValue
	if json.Unmarshal(e.Value(), &cur) == nil && cur.Node == v.Node && cur.When.Equal(v.When) {
		rev, err := r.write(ctx, kv, name, v, e.Revision())
		if isConflict(err) {
			return 0, fmt.Errorf("%w: another node took the stream", errFenced)
		}
		return rev, err
	}
	return 0, fmt.Errorf("%w: another node took the stream (node %s)", errFenced, cur.Node)
}

// keep decides about a lease the bucket did not acknowledge (err): it is
// kept while the members vouch for it, for at most ClaimWait without the
// bucket, and otherwise for TTL after its last renewal. It returns why the
// lease is lost, or "" to keep it.
func (l *lease) keep(err error) string {
	r := l.r
	l.mu.Lock()
	mine, prov, lastOK, since, vouched := l.answerLocked(), l.provisional, l.lastOK, l.since, l.vouched
	l.mu.Unlock()
	if !r.cfg.Provisional {
		if time.Since(lastOK) >= r.cfg.TTL {
			return fmt.Sprintf("not renewed for the lease TTL (%v): %v", r.cfg.TTL, err)
		}
		r.log.Warn("cluster: lease renewal failed, retrying", "stream", l.name, "err", err)
		return ""
	}
	base := lastOK
	if prov {
		base = since
	}
	if time.Since(base) >= r.cfg.ClaimWait {
		return fmt.Sprintf("not written to the registry bucket within %v: %v", r.cfg.ClaimWait, err)
	}
	verr := r.vouch(l.name, &mine)
	switch {
	case verr == nil:
		l.mu.Lock()
		l.vouched = time.Now()
		first := !l.kept && !prov
		l.kept = l.kept || !prov
		l.mu.Unlock()
		if first {
			r.kept.Add(1)
			r.log.Warn("cluster: lease kept on the members' word, the registry bucket does not answer", "stream", l.name, "err", err)
		}
		return ""
	case errors.Is(verr, errOutvoted):
		return verr.Error()
	case time.Since(lastOK) >= r.cfg.TTL && time.Since(vouched) >= r.cfg.TTL:
		return fmt.Sprintf("not renewed for the lease TTL (%v): %v; %v", r.cfg.TTL, err, verr)
	}
	r.log.Warn("cluster: lease renewal failed, retrying", "stream", l.name, "err", err, "members", verr)
	return ""
}

// lost ends this node's ownership: the publisher is kicked, so that it
// reconnects (to the owner, through its load balancer).
func (l *lease) lost(why string) {
	l.r.losses.Add(1)
	l.mu.Lock()
	left := l.left
	l.mu.Unlock()
	l.r.log.Warn("cluster: stream lost", "stream", l.name, "reason", why)
	if !left && l.pub.Kick != nil {
		go l.pub.Kick()
	}
}
