package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
)

// The members query: a core NATS request on QuerySubject that every
// node's registry answers with its own lease of the stream asked about (or
// that it holds none). It is how a node finds a stream's owner while the
// bucket cannot tell: core NATS needs only the routes between the
// surviving servers, not a JetStream quorum, a RAFT leader or a watch
// consumer. A dead node does not answer; a node that holds a lease it
// could not renew within TTL, nor keep on the members' word
// (provisional.go), answers that it holds none: it is about to give the
// stream up.

// leaseQuery asks the members who holds a stream's lease.
type leaseQuery struct {
	Stream string `json:"stream"`
}

// leaseAnswer is one member's answer.
type leaseAnswer struct {
	Node     string    `json:"node"`
	Held     bool      `json:"held"`
	URL      string    `json:"url,omitempty"`
	Live     bool      `json:"live,omitempty"`
	Revision uint64    `json:"revision,omitempty"`
	Disc     int64     `json:"disc,omitempty"`
	Since    time.Time `json:"since,omitzero"`
	// Provisional: the lease is not written yet (see provisional.go).
	Provisional bool `json:"provisional,omitempty"`
	// The publisher, for the takeover rule (leaseValue); SilentMs is as
	// of the answer.
	Proto    string `json:"proto,omitempty"`
	Host     string `json:"host,omitempty"`
	KeySum   string `json:"key_sum,omitempty"`
	SilentMs int64  `json:"silent_ms,omitempty"`
}

// value is the answer as a lease value, for the takeover rule.
func (a leaseAnswer) value() leaseValue {
	return leaseValue{Node: a.Node, URL: a.URL, Live: a.Live, Disc: a.Disc, When: a.Since,
		Proto: a.Proto, Host: a.Host, KeySum: a.KeySum, SilentMs: a.SilentMs}
}

// query is one members query of a stream, shared by concurrent Resolves
// and kept for Renew (or until the watch delivers the stream's lease).
type query struct {
	done  doneChan
	at    time.Time
	owner Owner
	found bool
	err   error
}

// doneChan is a channel closed once.
type doneChan chan struct{}

func (d doneChan) isClosed() bool {
	select {
	case <-d:
		return true
	default:
		return false
	}
}

// QuerySubject is the members query's subject for the registry's bucket.
func (r *Registry) QuerySubject() string { return "shopcast.registry." + r.cfg.Bucket + ".leases" }

// serveQueries answers the members queries from this node's leases.
func (r *Registry) serveQueries(nc *nats.Conn) (*nats.Subscription, error) {
	return nc.Subscribe(r.QuerySubject(), func(m *nats.Msg) {
		var q leaseQuery
		if json.Unmarshal(m.Data, &q) != nil || m.Reply == "" {
			return
		}
		a := leaseAnswer{Node: r.node.Name()}
		if l := r.heldLease(q.Stream); l != nil {
			l.mu.Lock()
			a = l.answerLocked()
			l.mu.Unlock()
		}
		b, _ := json.Marshal(a)
		_ = m.Respond(b)
	})
}

// queryOwner returns the members' answer for name: a recent one, the one
// in flight, or a new one.
func (r *Registry) queryOwner(ctx context.Context, name string) (*query, error) {
	r.mu.Lock()
	q, ok := r.queries[name]
	if ok && q.done.isClosed() && time.Since(q.at) >= r.cfg.Renew {
		ok = false
	}
	if !ok {
		q = &query{done: make(doneChan)}
		r.queries[name] = q
		r.mu.Unlock()
		q.owner, q.found, q.err = r.queryMembers(name)
		q.at = time.Now()
		close(q.done)
		if q.err != nil {
			r.mu.Lock()
			if r.queries[name] == q {
				delete(r.queries, name)
			}
			r.mu.Unlock()
		}
		return q, q.err
	}
	r.mu.Unlock()
	select {
	case <-q.done:
		return q, q.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// queryMembers asks every member who holds name's lease, and waits for
// the answers up to QueryTimeout: it stops early once every member it
// knows of (from their heartbeats) has answered, or every one but the
// silent ones whose heartbeat is stale once a holder has answered. Of two
// holders (a fenced one that has not noticed yet, or a provisional one),
// the one that beats the other wins (beats).
func (r *Registry) queryMembers(name string) (Owner, bool, error) {
	answers, _, err := r.collect(name, func(answers map[string]leaseAnswer, all, live map[string]bool) bool {
		found := false
		for _, a := range answers {
			found = found || a.Held
		}
		return covers(answers, all) || (found && len(live) > 0 && covers(answers, live))
	})
	if err != nil {
		return Owner{}, false, err
	}
	var best leaseAnswer
	found := false
	for _, a := range answers {
		if a.Held && (!found || beats(a, best)) {
			best, found = a, true
		}
	}
	if !found {
		return Owner{}, false, nil
	}
	return Owner{Stream: name, Node: best.Node, URL: best.URL, Live: best.Live, Revision: best.Revision,
		Discontinuity: best.Disc, Since: best.Since, Provisional: best.Provisional}, true, nil
}

// covers reports whether every member of set answered (and someone did).
func covers(answers map[string]leaseAnswer, set map[string]bool) bool {
	for n := range set {
		if _, ok := answers[n]; !ok {
			return false
		}
	}
	return len(answers) > 0
}

// collect sends the members query for name and gathers the answers, by
// node, for up to QueryTimeout, or until enough (given the answers, the
// members known from their heartbeats and those of them alive) says they
// are enough; nil: once every known member answered. It also returns the
// known members.
func (r *Registry) collect(name string, enough func(answers map[string]leaseAnswer, all, live map[string]bool) bool) (map[string]leaseAnswer, map[string]bool, error) {
	if enough == nil {
		enough = func(answers map[string]leaseAnswer, all, _ map[string]bool) bool { return covers(answers, all) }
	}
	nc := r.node.Conn()
	if nc == nil || !nc.IsConnected() {
		return nil, nil, errors.New("no NATS connection")
	}
	inbox := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return nil, nil, fmt.Errorf("members query: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	req, _ := json.Marshal(leaseQuery{Stream: name})
	if err := nc.PublishRequest(r.QuerySubject(), inbox, req); err != nil {
		return nil, nil, fmt.Errorf("members query: %w", err)
	}
	r.mu.Lock()
	now := time.Now()
	all, live := map[string]bool{}, map[string]bool{}
	for n := range r.nodes {
		all[n] = true
		if r.aliveLocked(n, now) {
			live[n] = true
		}
	}
	r.mu.Unlock()
	answers := map[string]leaseAnswer{}
	deadline := time.Now().Add(r.cfg.QueryTimeout)
	for {
		m, err := sub.NextMsg(time.Until(deadline))
		if err != nil {
			break // the time is up (or the connection went): what came is the answer
		}
		var a leaseAnswer
		if json.Unmarshal(m.Data, &a) != nil || a.Node == "" {
			continue
		}
		answers[a.Node] = a
		if len(all) > 0 && enough(answers, all, live) {
			break
		}
	}
	return answers, all, nil
}

// BucketLeader is the name of the NATS server that leads the registry
// bucket's RAFT group ("" while it has none), from JetStream's stream
// info.
func (r *Registry) BucketLeader(ctx context.Context) (string, error) {
	js := r.node.JetStream()
	if js == nil {
		return "", ErrNotStarted
	}
	st, err := js.Stream(ctx, "KV_"+r.cfg.Bucket)
	if err != nil {
		return "", fmt.Errorf("bucket %s: %w", r.cfg.Bucket, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return "", fmt.Errorf("bucket %s: %w", r.cfg.Bucket, err)
	}
	if info.Cluster == nil {
		return "", nil
	}
	return info.Cluster.Leader, nil
}

// MoveBucketLeader asks the bucket's RAFT leader to hand over to the
// server named to (a leader stepdown with a preferred successor) and
// waits until to leads, within ctx. Operators use it before taking the
// leader down on purpose; the failover tests to choose which case they
// measure.
func (r *Registry) MoveBucketLeader(ctx context.Context, to string) error {
	nc := r.node.Conn()
	if nc == nil {
		return ErrNotStarted
	}
	req, _ := json.Marshal(map[string]any{"placement": map[string]string{"preferred": to}})
	for {
		leader, err := r.BucketLeader(ctx)
		if err == nil && leader == to {
			return nil
		}
		if err == nil && leader != "" {
			rctx, cancel := context.WithTimeout(ctx, r.cfg.RequestTimeout)
			_, err = nc.RequestWithContext(rctx, "$JS.API.STREAM.LEADER.STEPDOWN.KV_"+r.cfg.Bucket, req)
			cancel()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("bucket leader still %q, not %s: %w (last error: %v)", leader, to, ctx.Err(), err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}
