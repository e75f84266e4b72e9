package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/shopcast/shopcast/ingest"
)

// Holding a stream while the bucket elects a leader.
//
// When the node that led the registry bucket's RAFT group dies, nothing
// can be written to the bucket until the survivors elect a new leader,
// which nats-server does after a random 4-9 s (its election timeouts are
// not options an embedding program can set). Left to the bucket alone,
// every owner would then give its streams up at TTL (its renewals fail),
// and the publisher of the dead node's streams, reconnecting elsewhere,
// would wait for the election before its first part.
//
// So while the bucket does not answer, a lease rests on the members'
// word: the members query (core NATS, no quorum needed) is asked, and a
// node may hold a stream when a majority of the cluster answered and no
// other member holds it. The majority is counted over the members the
// node knows from their heartbeats, and never fewer than the bucket's
// replicas: a node cut off with a minority of the cluster gets no
// majority and gives its streams up at TTL, as before, so at most one
// side of a partition holds a stream.
//
//   - An owner whose renewals fail keeps its lease on the members' word
//     (heldOwner still answers for it) and renews as soon as the bucket
//     answers; a lease that expired meanwhile is created again.
//   - A publisher whose claim the bucket cannot write is accepted at once
//     with a provisional lease: the node serves the stream and answers the
//     members query for it, so the proxy on every node sends viewers here.
//     Its discontinuity number is one more than any the node has seen
//     (the bucket's last, if a replica answers a direct get; the watched
//     owner's; this node's own counter), and the lease is written, fenced
//     as any claim, once the bucket has a leader. If by then another node
//     wrote a lease after this claim, or a later number was taken, the
//     provisional owner kicks its publisher.
//
// Either lasts at most ClaimWait without the bucket; two provisional
// claims of one stream (two publishers, during the election) are settled
// by the members query: a written lease beats a provisional one, and of
// two provisional ones the earlier claim, then the smaller node name.

// errProvisionalRefused is why a claim did not go ahead provisionally;
// errOutvoted, that another member holds the stream (a lease kept on the
// members' word is lost at once then); errNoMajority, that too few
// members answered.
var (
	errProvisionalRefused = errors.New("not claimed provisionally")
	errOutvoted           = errors.New("another member holds the stream")
	errNoMajority         = errors.New("no majority of the members answered")
)

// vouch asks the members whether this node may hold name without the
// bucket: a majority of the cluster must answer, and no other member may
// hold the stream in a way that beats mine (nil: a claim not made yet).
func (r *Registry) vouch(name string, mine *leaseAnswer) error {
	answers, known, err := r.collect(name, nil)
	if err != nil {
		return err
	}
	me := r.node.Name()
	known[me] = true
	answered := 1
	for n, a := range answers {
		known[n] = true
		if n == me {
			continue
		}
		answered++
		if a.Held && (mine == nil || beats(a, *mine)) {
			return fmt.Errorf("%w: node %s (revision %d, provisional %v)", errOutvoted, n, a.Revision, a.Provisional)
		}
	}
	members := max(len(known), r.node.Replicas())
	if 2*answered <= members {
		return fmt.Errorf("%w: %d of %d", errNoMajority, answered, members)
	}
	return nil
}

// heldByMember reports whether another member holds name on its word
// while the bucket shows the lease free or expired (an owner that kept
// its stream through an election, its key expired meanwhile), in a way
// that the takeover rule does not let me take, and why.
func (r *Registry) heldByMember(name string, me leaseValue) (bool, string) {
	answers, _, err := r.collect(name, func(answers map[string]leaseAnswer, all, live map[string]bool) bool {
		return covers(answers, all) || (len(live) > 0 && covers(answers, live))
	})
	if err != nil {
		return false, ""
	}
	for n, a := range answers {
		if n == me.Node || !a.Held {
			continue
		}
		if ok, why := r.takeable(a.value(), me); !ok {
			return true, why
		}
	}
	return false, ""
}

// beats reports whether another member's lease a wins over mine: a
// written lease over a provisional one, then the later revision; of two
// provisional ones, the earlier claim, then the smaller node name.
func beats(a, mine leaseAnswer) bool {
	switch {
	case a.Provisional != mine.Provisional:
		return !a.Provisional
	case !a.Provisional:
		return a.Revision >= mine.Revision
	case !a.Since.Equal(mine.Since):
		return a.Since.Before(mine.Since)
	}
	return a.Node < mine.Node
}

// claimProvisionally accepts publisher p on the members' word when the
// bucket could not write its claim (see the top of this file). v is this
// node's lease value; known, when not nil, the lease last read or watched,
// to which the takeover rule applies.
func (r *Registry) claimProvisionally(ctx context.Context, kv jetstream.KeyValue, name string, v leaseValue, known *leaseValue, floor int64, p ingest.Publisher) (*lease, error) {
	if !r.cfg.Provisional {
		return nil, fmt.Errorf("%w: cluster_provisional is off", errProvisionalRefused)
	}
	if known != nil {
		if ok, why := r.takeable(*known, v); !ok {
			return nil, fmt.Errorf("%w: %s", errProvisionalRefused, why)
		}
	}
	if err := r.vouch(name, nil); err != nil {
		return nil, fmt.Errorf("%w: %w", errProvisionalRefused, err)
	}
	r.mu.Lock()
	disc := floor
	if o, ok := r.owners[name]; ok {
		disc = max(disc, o.Discontinuity+1)
	}
	if known != nil {
		disc = max(disc, known.Disc+1)
	}
	r.mu.Unlock()
	// A replica may answer a direct get without a leader; bounded, as
	// it often does not.
	gctx, cancel := context.WithTimeout(ctx, r.cfg.QueryTimeout)
	if n, err := r.lastDiscontinuity(gctx, kv, name); err == nil {
		disc = max(disc, n+1)
	}
	cancel()
	now := time.Now()
	v.Disc, v.When = disc, now.UTC()
	l := &lease{r: r, name: name, val: v, pub: p, provisional: true, since: now, vouched: now,
		stop: make(chan struct{}), done: make(chan struct{}), poke: make(chan struct{}, 1)}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, fmt.Errorf("%w: closed", ErrNotReady)
	}
	if old := r.leases[name]; old != nil {
		r.mu.Unlock()
		old.stopRenewing()
		r.mu.Lock()
	}
	r.leases[name] = l
	r.mu.Unlock()
	r.provisional.Add(1)
	go l.renew()
	return l, nil
}

// lastDiscontinuity reads the last discontinuity number taken for name
// (-1 when none was).
func (r *Registry) lastDiscontinuity(ctx context.Context, kv jetstream.KeyValue, name string) (int64, error) {
	e, err := kv.Get(ctx, numbersPrefix+name)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return -1, nil
	}
	if err != nil {
		return 0, err
	}
	var n struct {
		Disc int64 `json:"disc"`
	}
	if err := json.Unmarshal(e.Value(), &n); err != nil {
		return 0, fmt.Errorf("discontinuity of %s: %w", name, err)
	}
	return n.Disc, nil
}

// errFenced is a provisional lease that cannot be written: another owner
// came first.
var errFenced = errors.New("fenced")

// confirm writes a provisional lease into the bucket: the discontinuity
// number first (it must not have moved past the lease's), then the lease
// at the revision read. It returns nil once written, errFenced (wrapped)
// when the lease can never be, another error to retry later.
func (r *Registry) confirm(ctx context.Context, kv jetstream.KeyValue, l *lease) error {
	l.mu.Lock()
	v := l.val
	l.mu.Unlock()
	rctx, cancel := context.WithTimeout(ctx, r.cfg.RequestTimeout)
	defer cancel()
	ok, rev, why, read, err := r.claimable(rctx, kv, l.name, v)
	if err != nil {
		return err
	}
	if read != nil && read.Node != v.Node && read.When.After(l.since) {
		return fmt.Errorf("%w: node %s claimed the stream after this node's provisional claim", errFenced, read.Node)
	}
	if !ok {
		// Most often the dead owner's lease, until the new leader
		// expires it; a live holder shows in the members query.
		return fmt.Errorf("lease not free yet: %s", why)
	}
	for range 10 {
		e, err := kv.Get(rctx, numbersPrefix+l.name)
		var cur int64 = -1
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return fmt.Errorf("discontinuity of %s: %w", l.name, err)
		default:
			var n struct {
				Disc int64 `json:"disc"`
			}
			if json.Unmarshal(e.Value(), &n) == nil {
				cur = n.Disc
			}
		}
		if cur > v.Disc {
			return fmt.Errorf("%w: discontinuity %d was taken after this claim's %d", errFenced, cur, v.Disc)
		}
		if cur == v.Disc {
			break
		}
		b, _ := json.Marshal(map[string]int64{"disc": v.Disc})
		if err == nil {
			_, err = kv.Update(rctx, numbersPrefix+l.name, b, e.Revision())
		} else {
			_, err = kv.Create(rctx, numbersPrefix+l.name, b)
		}
		if err == nil {
			break
		}
		if !isConflict(err) {
			return fmt.Errorf("discontinuity of %s: %w", l.name, err)
		}
	}
	newRev, err := r.write(rctx, kv, l.name, v, rev)
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.rev, l.lastOK, l.provisional = newRev, time.Now(), false
	l.mu.Unlock()
	r.log.Info("cluster: provisional claim written", "stream", l.name, "revision", newRev, "discontinuity", v.Disc,
		"after", time.Since(l.since).Round(time.Millisecond))
	return nil
}

// takeable is the takeover rule: whether me may take the stream from the
// lease v, and why (or why not). A lease not renewed for TTL has expired,
// though a bucket without a leader has not removed it yet (the leader
// does); its time is the server's, so this leans on the nodes' clocks
// agreeing to well within TTL.
func (r *Registry) takeable(v, me leaseValue) (bool, string) {
	switch {
	case v.Node == me.Node:
		return true, "held by this node"
	case !v.Live:
		return true, "the publisher on " + v.Node + " left"
	case v.KeySum != "" && me.KeySum != "" && constantTimeEqual(v.KeySum, me.KeySum):
		return true, "same stream key"
	case v.Host != "" && v.Host == me.Host:
		return true, "same address"
	case time.Duration(v.SilentMs)*time.Millisecond >= r.cfg.TakeoverSilence:
		return true, "the publisher on " + v.Node + " is silent"
	case !v.written.IsZero() && time.Since(v.written) >= r.cfg.TTL:
		return true, "the lease of " + v.Node + " expired"
	}
	return false, fmt.Sprintf("the %s publisher from %s on node %s is still sending", v.Proto, v.Host, v.Node)
}
