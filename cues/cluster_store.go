package cues

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/shopcast/shopcast/packager"
)

// StateQueued is a cue accepted by a node that does not own its stream: it
// is acknowledged (durable in the cluster) and waits for the stream's owner
// to place it, which the owner does when it sees it, or when the stream
// starts there. Only a ClusterStore holds queued cues.
const StateQueued State = "queued"

// ErrUnavailable is a cluster store that cannot write: too few of the
// cluster's JetStream servers are up for a quorum, or this node is cut off
// from them. Nothing was acknowledged; the API answers 503.
var ErrUnavailable = errors.New("cue store unavailable: the cluster's JetStream has no quorum")

// DefaultBucket is the KV bucket of ClusterStore.
const DefaultBucket = "shopcast-cues"

// DefaultNotifySubject is ClusterStore.NotifySubject's default.
const DefaultNotifySubject = "shopcast.cues.waiting"

// maxHints bounds the notices kept per stream until the Service takes them.
const maxHints = 4096

// notice is the message on NotifySubject.
type notice struct {
	Kind   string `json:"kind"` // "queued" or "end"
	Stream string `json:"stream"`
	ID     string `json:"id"`
}

// ClusterStore keeps every stream's cues in a JetStream key-value bucket
// that the cluster replicates (RAFT; R3 with three servers), so that every
// node reads the same cues and a write acknowledged by JetStream survives
// the loss of any one server. It implements CueStore with the Store's rules,
// plus the queue of cues waiting for their stream's owner.
//
// Keys (S is the stream name in unpadded URL-safe base64, as KV keys admit
// only [-/_=.A-Za-z0-9]):
//
//	c.S.ID  the cue's Record, JSON (kept forever: the ids ever used)
//	n.S     the last cue sequence number a node took for the stream
//	        (each takes blocks of seqBlock), decimal; it also marks
//	        the stream as known to the cluster
//	e.S.ID  a request, from a node that does not own the stream, that its
//	        owner end cue ID
//	b.N     a barrier of node handle N (Sync)
//
// Every node watches c.> and e.>: it keeps the open cues (pending, queued,
// placed and not over) in memory for OpenCues, and tells its Service
// which streams have work (Dirty).
type ClusterStore struct {
	// JetStream is the cluster's JetStream context. Required.
	JetStream jetstream.JetStream
	// Bucket is the KV bucket's name. It defaults to DefaultBucket.
	Bucket string
	// Replicas is how many servers keep the bucket when this node creates
	// it: min(3, the cluster's size). It defaults to 1.
	Replicas int
	// OpTimeout bounds each JetStream request; a write that gets no
	// acknowledgement in time fails with ErrUnavailable. It defaults to 2s.
	OpTimeout time.Duration
	// Logger receives the store's logs. It defaults to slog.Default().
	Logger *slog.Logger
	// Observer, when set, is told of every failed JetStream request.
	Observer ClusterObserver
	// NotifySubject is the core NATS subject on which a node tells the
	// owner of a stream at once that a cue waits for it (queued, or asked
	// to end), so that placing does not wait on the watch, which takes
	// seconds to resume after the JetStream server holding it fails. It
	// defaults to DefaultNotifySubject.
	NotifySubject string

	initOnce  sync.Once
	kvp       atomic.Pointer[jetstream.KeyValue] // set once open
	session   string
	clock     func() time.Time // tests replace it
	closed    chan struct{}
	closeOnce sync.Once
	opener    sync.WaitGroup

	lifeMu sync.Mutex // Open and Close
	sub    *nats.Subscription
	cancel context.CancelFunc
	done   chan struct{}

	seqMu sync.Mutex // one sequence number taken at a time by this node
	seqs  map[string]*seqRange

	mu      sync.Mutex
	open    map[string]map[string]Record // stream -> id -> open record
	ends    map[string]map[string]bool   // stream -> ids asked to end
	known   map[string]bool
	seen    uint64        // the highest revision the watch delivered
	changed chan struct{} // closed and replaced at every change
	dirty   map[string]bool
	dirtyCh chan struct{} // has a value while dirty is not empty
	// hints are the notices received: stream -> id -> kind.
	hints map[string]map[string]string
}

// ClusterObserver is told of the cluster's cue events, for metrics. Its
// methods must be safe for concurrent use.
type ClusterObserver interface {
	// CuePropagated is called when the owner placed a cue that another
	// node accepted, with the time from its acceptance to its placement.
	CuePropagated(stream string, lag time.Duration)
	// ClusterStoreFailed is called when a JetStream request of the cue
	// store failed (op: "read", "write" or "watch").
	ClusterStoreFailed(op string)
}

// init applies the defaults and makes the in-memory state, once.
func (s *ClusterStore) init() {
	s.initOnce.Do(func() {
		if s.Bucket == "" {
			s.Bucket = DefaultBucket
		}
		if s.Replicas <= 0 {
			s.Replicas = 1
		}
		if s.OpTimeout <= 0 {
			s.OpTimeout = 2 * time.Second
		}
		if s.Logger == nil {
			s.Logger = slog.Default()
		}
		if s.NotifySubject == "" {
			s.NotifySubject = DefaultNotifySubject
		}
		if s.clock == nil {
			s.clock = time.Now
		}
		s.session = newID()
		s.open = map[string]map[string]Record{}
		s.ends = map[string]map[string]bool{}
		s.known = map[string]bool{}
		s.changed = make(chan struct{})
		s.dirty = map[string]bool{}
		s.dirtyCh = make(chan struct{}, 1)
		s.hints = map[string]map[string]string{}
		s.closed = make(chan struct{})
	})
}

// Open creates or joins the bucket and starts watching it; it returns once
// the watch has delivered the bucket's current contents. ctx bounds the
// opening, not the store's life: Close ends that.
func (s *ClusterStore) Open(ctx context.Context) error {
	if s.JetStream == nil {
		return errors.New("cluster cue store: no JetStream")
	}
	s.init()
	s.lifeMu.Lock()
	defer s.lifeMu.Unlock()
	select {
	case <-s.closed:
		return errors.New("cluster cue store: closed")
	default:
	}
	if s.kvp.Load() != nil {
		return nil
	}
	// The first node creates the bucket; the others join it as it is, so
	// that a node configured with fewer replicas cannot shrink it.
	kv, err := s.JetStream.KeyValue(ctx, s.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = s.JetStream.CreateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      s.Bucket,
			Description: "shopcast cues: one record per cue, by stream and id",
			History:     1,
			Replicas:    s.Replicas,
			Storage:     jetstream.FileStorage,
		})
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = s.JetStream.KeyValue(ctx, s.Bucket)
		}
	}
	if err != nil {
		return fmt.Errorf("cluster cue store: bucket %s: %w", s.Bucket, err)
	}
	sub, err := s.JetStream.Conn().Subscribe(s.NotifySubject, s.noticed)
	if err != nil {
		return fmt.Errorf("cluster cue store: subscribe %s: %w", s.NotifySubject, err)
	}
	wctx, cancel := context.WithCancel(context.Background())
	w, err := kv.WatchFiltered(wctx, []string{"c.>", "e.>", "b.>"})
	if err != nil {
		cancel()
		_ = sub.Unsubscribe()
		return fmt.Errorf("cluster cue store: watch: %w", err)
	}
	done := make(chan struct{})
	initial := make(chan struct{})
	go s.watch(wctx, w, initial, done)
	select {
	case <-initial:
	case <-ctx.Done():
		cancel()
		<-done
		_ = sub.Unsubscribe()
		return fmt.Errorf("cluster cue store: reading the bucket: %w", ctx.Err())
	}
	s.sub, s.cancel, s.done = sub, cancel, done
	s.kvp.Store(&kv)
	return nil
}

// OpenWhen opens the store in the background once ready is closed (the
// node's JetStream answers, which in a cluster waits for a quorum of its
// members), trying again every second until it is open or closed. Until
// then every request fails with ErrUnavailable. Opened, when set, is
// called once it is open.
func (s *ClusterStore) OpenWhen(ready <-chan struct{}, opened func()) {
	s.init()
	s.opener.Add(1)
	go func() {
		defer s.opener.Done()
		select {
		case <-ready:
		case <-s.closed:
			return
		}
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 10*s.OpTimeout)
			err := s.Open(ctx)
			cancel()
			if err == nil {
				if opened != nil {
					opened()
				}
				return
			}
			s.Logger.Warn("cluster cue store not open yet", "err", err)
			select {
			case <-time.After(time.Second):
			case <-s.closed:
				return
			}
		}
	}()
}

// errNotOpen is a request before the store is open.
var errNotOpen = errors.New("the cluster cue store is not open yet")

// bkt is the bucket, or one that fails every request before Open.
func (s *ClusterStore) bkt() jetstream.KeyValue {
	if kv := s.kvp.Load(); kv != nil {
		return *kv
	}
	return unopenedKV{}
}

// unopenedKV is the bucket before Open: the requests the store makes fail.
type unopenedKV struct{ jetstream.KeyValue }

func (unopenedKV) Get(context.Context, string) (jetstream.KeyValueEntry, error) {
	return nil, errNotOpen
}

func (unopenedKV) Put(context.Context, string, []byte) (uint64, error) { return 0, errNotOpen }

func (unopenedKV) Create(context.Context, string, []byte, ...jetstream.KVCreateOpt) (uint64, error) {
	return 0, errNotOpen
}

func (unopenedKV) Update(context.Context, string, []byte, uint64) (uint64, error) {
	return 0, errNotOpen
}

func (unopenedKV) Delete(context.Context, string, ...jetstream.KVDeleteOpt) error { return errNotOpen }

// Close stops the watch.
func (s *ClusterStore) Close() error {
	s.init()
	s.closeOnce.Do(func() { close(s.closed) })
	s.opener.Wait()
	s.lifeMu.Lock()
	defer s.lifeMu.Unlock()
	if s.sub != nil {
		_ = s.sub.Unsubscribe()
		s.sub = nil
	}
	if s.cancel != nil {
		s.cancel()
		<-s.done
		s.cancel = nil
	}
	return nil
}

func (s *ClusterStore) watch(ctx context.Context, w jetstream.KeyWatcher, initial, done chan struct{}) {
	defer close(done)
	defer func() { _ = w.Stop() }()
	first := true
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				if ctx.Err() == nil {
					s.failed("watch", errors.New("watch closed"))
				}
				return
			}
			if e == nil { // the current contents are all delivered
				if first {
					first = false
					close(initial)
				}
				continue
			}
			s.apply(e)
		}
	}
}

// apply records one change the watch delivered.
func (s *ClusterStore) apply(e jetstream.KeyValueEntry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e.Revision() > s.seen {
		s.seen = e.Revision()
	}
	kind, stream, id, ok := parseKey(e.Key())
	if !ok { // a barrier (Sync)
		close(s.changed)
		s.changed = make(chan struct{})
		return
	}
	s.known[stream] = true
	put := e.Operation() == jetstream.KeyValuePut
	switch kind {
	case 'c':
		var r Record
		if put && json.Unmarshal(e.Value(), &r) != nil {
			s.Logger.Error("cluster cue store: undecodable record", "key", e.Key())
			put = false
		}
		if put && isOpen(&r) {
			m := s.open[stream]
			if m == nil {
				m = map[string]Record{}
				s.open[stream] = m
			}
			m[id] = r
			if r.State == StateQueued {
				s.markDirty(stream)
			}
		} else if m := s.open[stream]; m != nil {
			delete(m, id)
			if len(m) == 0 {
				delete(s.open, stream)
			}
		}
	case 'e':
		m := s.ends[stream]
		if put {
			if m == nil {
				m = map[string]bool{}
				s.ends[stream] = m
			}
			m[id] = true
			s.markDirty(stream)
		} else if m != nil {
			delete(m, id)
			if len(m) == 0 {
				delete(s.ends, stream)
			}
		}
	}
	close(s.changed)
	s.changed = make(chan struct{})
}

// isOpen reports whether a record can still change without a DELETE: it is
// kept in memory while it can.
func isOpen(r *Record) bool {
	switch r.State {
	case StatePending, StateQueued, statePlaced:
		return true
	}
	return false
}

// markDirty notes that stream has queued cues or end requests; s.mu held.
func (s *ClusterStore) markDirty(stream string) {
	s.dirty[stream] = true
	select {
	case s.dirtyCh <- struct{}{}:
	default:
	}
}

// noticed records a notice from another node.
func (s *ClusterStore) noticed(m *nats.Msg) {
	var n notice
	if json.Unmarshal(m.Data, &n) != nil || n.Stream == "" || !validID(n.ID) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.hints[n.Stream]
	if h == nil {
		h = map[string]string{}
		s.hints[n.Stream] = h
	}
	if len(h) >= maxHints {
		return // nobody takes them: the watch tells the owner all the same
	}
	h[n.ID] = n.Kind
	s.markDirty(n.Stream)
}

// notify tells the stream's owner, whichever node it is, that cue id waits
// for it. A notice lost is made up for by the watch.
func (s *ClusterStore) notify(kind, stream, id string) {
	b, err := json.Marshal(notice{Kind: kind, Stream: stream, ID: id})
	if err == nil {
		err = s.JetStream.Conn().Publish(s.NotifySubject, b)
	}
	if err != nil {
		s.Logger.Warn("cluster cue store: notice not sent", "stream", stream, "cue", id, "err", err)
	}
}

// takeHints returns and forgets stream's notices of kind.
func (s *ClusterStore) takeHints(stream, kind string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for id, k := range s.hints[stream] {
		if k == kind {
			out = append(out, id)
			delete(s.hints[stream], id)
		}
	}
	if len(s.hints[stream]) == 0 {
		delete(s.hints, stream)
	}
	return out
}

// dropHints forgets stream's notices: every node receives every notice,
// and only the owner acts on them.
func (s *ClusterStore) dropHints(stream string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.hints, stream)
}

// Dirty has a value when streams have queued cues or end requests to look
// at; TakeDirty returns them.
func (s *ClusterStore) Dirty() <-chan struct{} {
	s.init()
	return s.dirtyCh
}

// TakeDirty returns and forgets the streams marked since the last call.
func (s *ClusterStore) TakeDirty() []string {
	s.init()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.dirty))
	for k := range s.dirty {
		out = append(out, k)
	}
	clear(s.dirty)
	return out
}

// Changed returns a channel closed at the next change the watch delivers.
func (s *ClusterStore) Changed() <-chan struct{} {
	s.init()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// awaitSeen waits until the watch has delivered revision rev, so that this
// node reads its own writes from memory (OpenCues). It gives up after
// OpTimeout: the write is acknowledged either way.
func (s *ClusterStore) awaitSeen(rev uint64) {
	deadline := time.NewTimer(s.OpTimeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		seen, ch := s.seen, s.changed
		s.mu.Unlock()
		if seen >= rev {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			return
		}
	}
}

var keyEnc = base64.RawURLEncoding

func recordKey(stream, id string) string {
	return "c." + keyEnc.EncodeToString([]byte(stream)) + "." + id
}
func seqKey(stream string) string     { return "n." + keyEnc.EncodeToString([]byte(stream)) }
func endKey(stream, id string) string { return "e." + keyEnc.EncodeToString([]byte(stream)) + "." + id }

// parseKey splits a c. or e. key.
func parseKey(key string) (kind byte, stream, id string, ok bool) {
	parts := strings.Split(key, ".")
	if len(parts) != 3 || (parts[0] != "c" && parts[0] != "e") {
		return 0, "", "", false
	}
	b, err := keyEnc.DecodeString(parts[1])
	if err != nil || len(b) == 0 {
		return 0, "", "", false
	}
	return parts[0][0], string(b), parts[2], true
}

func (s *ClusterStore) ctx() (context.Context, context.CancelFunc) {
	s.init()
	return context.WithTimeout(context.Background(), s.OpTimeout)
}

// failed counts a failed request and maps it: a JetStream that does not
// answer is ErrUnavailable.
func (s *ClusterStore) failed(op string, err error) error {
	if s.Observer != nil {
		s.Observer.ClusterStoreFailed(op)
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.Code < 500 && apiErr.Code != 0 {
		return fmt.Errorf("cluster cue store: %w", err)
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// getEntry reads the record of stream's id with its revision from the
// bucket's leader, so that a compare-and-set starts from the latest write:
// the KV's own Get may be answered by a replica a write behind.
func (s *ClusterStore) getEntry(stream, id string) (Record, uint64, error) {
	if !validID(id) {
		return Record{}, 0, ErrCueNotFound
	}
	v, rev, err := s.leaderGet(recordKey(stream, id))
	if err != nil {
		return Record{}, 0, err
	}
	var r Record
	if err := json.Unmarshal(v, &r); err != nil {
		return Record{}, 0, fmt.Errorf("cluster cue store: record %q: %w", id, err)
	}
	return r, rev, nil
}

// leaderGet reads key's latest value and revision through the stream
// leader (JetStream's STREAM.MSG.GET, not a direct get). It returns
// ErrCueNotFound for a key without a value (never written, or deleted).
func (s *ClusterStore) leaderGet(key string) ([]byte, uint64, error) {
	if s.kvp.Load() == nil {
		return nil, 0, s.failed("read", errNotOpen)
	}
	req, err := json.Marshal(map[string]string{"last_by_subj": "$KV." + s.Bucket + "." + key})
	if err != nil {
		return nil, 0, err
	}
	ctx, cancel := s.ctx()
	defer cancel()
	msg, err := s.JetStream.Conn().RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET.KV_"+s.Bucket, req)
	if err != nil {
		return nil, 0, s.failed("read", err)
	}
	var resp struct {
		Error *struct {
			Code        int    `json:"code"`
			ErrCode     int    `json:"err_code"`
			Description string `json:"description"`
		} `json:"error"`
		Message *struct {
			Seq  uint64 `json:"seq"`
			Hdrs []byte `json:"hdrs"`
			Data []byte `json:"data"`
		} `json:"message"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return nil, 0, s.failed("read", fmt.Errorf("undecodable answer: %w", err))
	}
	switch {
	case resp.Error != nil && resp.Error.Code == 404:
		return nil, 0, ErrCueNotFound
	case resp.Error != nil:
		return nil, 0, s.failed("read", fmt.Errorf("%s (code %d, err_code %d)", resp.Error.Description, resp.Error.Code, resp.Error.ErrCode))
	case resp.Message == nil:
		return nil, 0, s.failed("read", errors.New("an answer without a message"))
	}
	if op := string(resp.Message.Hdrs); strings.Contains(op, "KV-Operation: DEL") || strings.Contains(op, "KV-Operation: PURGE") {
		return nil, resp.Message.Seq, ErrCueNotFound
	}
	return resp.Message.Data, resp.Message.Seq, nil
}

// Get returns the record of cue id in stream, or ErrCueNotFound. It reads
// any replica (a KV Get), which may be a moment behind the latest write,
// and answers while the cluster has no quorum.
func (s *ClusterStore) Get(stream, id string) (Record, error) {
	if !validID(id) {
		return Record{}, ErrCueNotFound
	}
	ctx, cancel := s.ctx()
	defer cancel()
	e, err := s.bkt().Get(ctx, recordKey(stream, id))
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return Record{}, ErrCueNotFound
	}
	if err != nil {
		return Record{}, s.failed("read", err)
	}
	var r Record
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return Record{}, fmt.Errorf("cluster cue store: record %q: %w", id, err)
	}
	return r, nil
}

// validID is an id a KV key can hold: the cue schema's [A-Za-z0-9_-]{1,64}.
func validID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Known reports whether the cluster has any record of stream: a cue, or a
// start of it on some node (MarkStream).
func (s *ClusterStore) Known(stream string) bool {
	s.mu.Lock()
	k := s.known[stream]
	s.mu.Unlock()
	if k {
		return true
	}
	ctx, cancel := s.ctx()
	defer cancel()
	_, err := s.bkt().Get(ctx, seqKey(stream))
	if err == nil {
		s.mu.Lock()
		s.known[stream] = true
		s.mu.Unlock()
	}
	return err == nil
}

// Sync waits until this node's memory holds every write the cluster
// acknowledged before the call: it writes a barrier key and waits for the
// watch to deliver it, which it does after everything before it. A stream
// that starts on a new owner reads its cues from memory (OpenCues) after
// Sync, so that it puts back what the last owner placed a moment ago.
func (s *ClusterStore) Sync() error {
	ctx, cancel := s.ctx()
	defer cancel()
	rev, err := s.bkt().Put(ctx, "b."+s.session, []byte(s.clock().UTC().Format(time.RFC3339Nano)))
	if err != nil {
		return s.failed("write", err)
	}
	s.awaitSeen(rev)
	return nil
}

// MarkStream records that stream started on this node, so that every node
// accepts cues for it from now on (Known), also while it has no owner.
func (s *ClusterStore) MarkStream(stream string) error {
	ctx, cancel := s.ctx()
	defer cancel()
	_, err := s.bkt().Create(ctx, seqKey(stream), []byte("0"))
	if err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
		return s.failed("write", err)
	}
	s.mu.Lock()
	s.known[stream] = true
	s.mu.Unlock()
	return nil
}

// seqBlock is how many sequence numbers a node takes from a stream's n.
// key at once: with one compare-and-set per cue, a burst of cues posted
// to every node at once spent most of its time in conflicts on that key.
// Sequence numbers need only be distinct (emsg ids); the numbers a node
// stops without using are never used.
const seqBlock = 16

// seqRange is the rest of a block this node took: next up to last.
type seqRange struct{ next, last uint32 }

// nextSeq takes stream's next cue sequence number from this node's block,
// taking a new block by compare-and-set on the stream's n. key when it is
// used up.
func (s *ClusterStore) nextSeq(stream string) (uint32, error) {
	s.seqMu.Lock()
	defer s.seqMu.Unlock()
	if b := s.seqs[stream]; b != nil && b.next <= b.last {
		seq := b.next
		b.next++
		return seq, nil
	}
	first, err := s.takeSeqs(stream)
	if err != nil {
		return 0, err
	}
	if s.seqs == nil {
		s.seqs = map[string]*seqRange{}
	}
	s.seqs[stream] = &seqRange{next: first + 1, last: first + seqBlock - 1}
	return first, nil
}

// takeSeqs takes a block of seqBlock sequence numbers of stream and
// returns its first.
func (s *ClusterStore) takeSeqs(stream string) (uint32, error) {
	key := seqKey(stream)
	// Bounded by time, not tries: a leader that lost its quorum answers
	// reads but refuses every write as a conflict.
	deadline := time.Now().Add(s.OpTimeout)
	for time.Now().Before(deadline) {
		v, rev, err := s.leaderGet(key)
		var cur uint64
		switch {
		case errors.Is(err, ErrCueNotFound):
			rev = 0
		case err != nil:
			return 0, err
		default:
			cur, err = strconv.ParseUint(string(v), 10, 32)
			if err != nil {
				return 0, fmt.Errorf("cluster cue store: sequence of %q: %w", stream, err)
			}
		}
		if cur+seqBlock > 1<<31-1 {
			return 0, errors.New("cue store: stream has used every cue sequence number")
		}
		ctx, cancel := s.ctx()
		v = []byte(strconv.FormatUint(cur+seqBlock, 10))
		if rev == 0 {
			_, err = s.bkt().Create(ctx, key, v)
		} else {
			_, err = s.bkt().Update(ctx, key, v, rev)
		}
		cancel()
		switch {
		case err == nil:
			return uint32(cur + 1), nil
		case errors.Is(err, jetstream.ErrKeyExists), errors.Is(err, jetstream.ErrKeyRevisionMismatch):
			// Another node took a block: read again, after a few ms so
			// that nodes in step do not collide again.
			time.Sleep(time.Duration(1+rand.IntN(5)) * time.Millisecond)
		default:
			return 0, s.failed("write", err)
		}
	}
	return 0, s.failed("write", fmt.Errorf("the sequence of %q: no write succeeded in %s", stream, s.OpTimeout))
}

// Reserve records c as pending in stream, as Store.Reserve does: it takes
// its id (generating one into c.ID if empty) and the next sequence number,
// and returns ErrIDUsed with the record for an id used before. A pending
// record of another handle of c's id with the same cue is taken over.
func (s *ClusterStore) Reserve(stream string, c *Cue, now time.Time) (Record, error) {
	return s.reserve(stream, c, now, StatePending)
}

// Enqueue records c as queued in stream, for its owner to place: like
// Reserve, but once it returns the cue is acknowledged.
func (s *ClusterStore) Enqueue(stream string, c *Cue, now time.Time) (Record, error) {
	rec, err := s.reserve(stream, c, now, StateQueued)
	if err == nil {
		s.notify("queued", stream, rec.Cue.ID)
	}
	return rec, err
}

func (s *ClusterStore) reserve(stream string, c *Cue, now time.Time, state State) (Record, error) {
	s.init()
	if stream == "" {
		return Record{}, errors.New("cue store: empty stream name")
	}
	session := s.session
	if state == StateQueued {
		session = "" // the owner places it, whoever accepted it
	}
	if c.ID != "" {
		if rec, taken, err := s.takeOver(stream, c, now, state, session); taken || err != nil {
			return rec, err
		}
	}
	seq, err := s.nextSeq(stream)
	if err != nil {
		return Record{}, err
	}
	generated := c.ID == ""
	for deadline := time.Now().Add(s.OpTimeout); time.Now().Before(deadline); {
		if generated {
			c.ID = newID()
		}
		rec := Record{Stream: stream, Cue: *c, Seq: seq, State: state,
			Created: now, Updated: now, Session: session}
		v, err := json.Marshal(&rec)
		if err != nil {
			return Record{}, err
		}
		ctx, cancel := s.ctx()
		rev, err := s.bkt().Create(ctx, recordKey(stream, c.ID), v)
		cancel()
		switch {
		case err == nil:
			s.awaitSeen(rev)
			return rec, nil
		case errors.Is(err, jetstream.ErrKeyExists) && generated:
			continue
		case errors.Is(err, jetstream.ErrKeyExists):
			// Reserved by another node since the read: the rules again.
			if rec, taken, err := s.takeOver(stream, c, now, state, session); taken || err != nil {
				return rec, err
			}
			continue
		default:
			return Record{}, s.failed("write", err)
		}
	}
	return Record{}, s.failed("write", fmt.Errorf("cue %q: no write succeeded in %s", c.ID, s.OpTimeout))
}

// takeOver applies Reserve's rules to an id that has a record: ErrIDUsed
// with it, or a pending leftover of the same cue taken over. taken is
// false when the id has no record.
func (s *ClusterStore) takeOver(stream string, c *Cue, now time.Time, state State, session string) (Record, bool, error) {
	for deadline := time.Now().Add(s.OpTimeout); time.Now().Before(deadline); {
		r, rev, err := s.getEntry(stream, c.ID)
		if errors.Is(err, ErrCueNotFound) {
			return Record{}, false, nil
		}
		if err != nil {
			return Record{}, true, err
		}
		if r.State != StatePending || r.Session == s.session || !sameCue(&r.Cue, c) {
			return r, true, ErrIDUsed
		}
		r.State, r.Session, r.Updated = state, session, now
		rec, err := s.write(stream, &r, rev)
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			continue
		}
		return rec, true, err
	}
	return Record{}, true, s.failed("write", fmt.Errorf("cue %q: no write succeeded in %s", c.ID, s.OpTimeout))
}

// write stores r over revision rev.
func (s *ClusterStore) write(stream string, r *Record, rev uint64) (Record, error) {
	if r.State != StatePending {
		r.Session = ""
	}
	v, err := json.Marshal(r)
	if err != nil {
		return Record{}, err
	}
	ctx, cancel := s.ctx()
	defer cancel()
	nrev, err := s.bkt().Update(ctx, recordKey(stream, r.Cue.ID), v, rev)
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return Record{}, err
	}
	if err != nil {
		return Record{}, s.failed("write", err)
	}
	s.awaitSeen(nrev)
	return *r, nil
}

// errUnchanged tells update that fn left the record as it was.
var errUnchanged = errors.New("unchanged")

// update applies fn to the record of id in stream and writes it back, by
// compare-and-set: when another node wrote it meanwhile, fn runs again on
// what that node wrote.
func (s *ClusterStore) update(stream, id string, now time.Time, fn func(r *Record) error) (Record, error) {
	for deadline := time.Now().Add(s.OpTimeout); time.Now().Before(deadline); {
		r, rev, err := s.getEntry(stream, id)
		if err != nil {
			return Record{}, err
		}
		if err := fn(&r); errors.Is(err, errUnchanged) {
			return r, nil
		} else if err != nil {
			return Record{}, err
		}
		r.Updated = now
		rec, err := s.write(stream, &r, rev)
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			continue
		}
		return rec, err
	}
	return Record{}, s.failed("write", fmt.Errorf("cue %q: no write succeeded in %s", id, s.OpTimeout))
}

// ErrPlacedElsewhere is a Place of a cue that is no longer waiting to be
// placed: another node placed or finished it first.
var ErrPlacedElsewhere = errors.New("cue store: the cue was placed or finished by another node")

// Place records where the packager placed a pending or queued cue.
func (s *ClusterStore) Place(stream, id string, at packager.EventTime, now time.Time) (Record, error) {
	return s.update(stream, id, now, func(r *Record) error { return placeRecord(r, at) })
}

// placeRev is Place of rec read at revision rev: one write when nobody
// wrote the record since.
func (s *ClusterStore) placeRev(stream string, rec Record, rev uint64, at packager.EventTime, now time.Time) (Record, error) {
	r := rec
	if err := placeRecord(&r, at); err != nil {
		return Record{}, err
	}
	r.Updated = now
	out, err := s.write(stream, &r, rev)
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return s.Place(stream, rec.Cue.ID, at, now)
	}
	return out, err
}

func placeRecord(r *Record, at packager.EventTime) error {
	if r.State != StatePending && r.State != StateQueued {
		return ErrPlacedElsewhere
	}
	r.place(at)
	return nil
}

// Replace records where the packager placed a cue again after its stream
// restarted, as Store.Replace does.
func (s *ClusterStore) Replace(stream, id string, at packager.EventTime, now time.Time) (Record, error) {
	return s.update(stream, id, now, func(r *Record) error {
		r.replace(at, now)
		return nil
	})
}

// Finish ends, cancels or fails a cue, as Store.Finish does. A cue another
// node finished first is left as that node wrote it.
func (s *ClusterStore) Finish(stream, id string, state State, end packager.EventTime, now time.Time) (Record, error) {
	return s.update(stream, id, now, func(r *Record) error {
		if !isOpen(r) {
			return errUnchanged
		}
		r.State = state
		if state == StateCancelled {
			r.End = time.Time{}
		}
		if state != StateEnded {
			return nil
		}
		r.End, r.EndMedia = end.Wall, end.Media
		if r.End.IsZero() {
			r.End = now
		}
		return nil
	})
}

// Release forgets a pending cue the packager never placed, freeing its id.
func (s *ClusterStore) Release(stream, id string) error {
	r, rev, err := s.getEntry(stream, id)
	if err != nil {
		return err
	}
	if r.State != StatePending {
		return fmt.Errorf("cue store: release of %s cue %q", r.State, id)
	}
	ctx, cancel := s.ctx()
	defer cancel()
	if err := s.bkt().Delete(ctx, recordKey(stream, id), jetstream.LastRevision(rev)); err != nil {
		return s.failed("write", err)
	}
	return nil
}

// OpenCues returns the stream's cues that are not finished, ordered by start
// then sequence, from the watch: what this node wrote, and what other nodes
// wrote a moment ago.
func (s *ClusterStore) OpenCues(stream string) ([]Record, error) {
	s.init()
	// A placed cue whose end has passed changes no more: it leaves memory
	// at the first listing after its end, as the Store's open set prunes.
	now := s.clock()
	s.mu.Lock()
	m := s.open[stream]
	out := make([]Record, 0, len(m))
	for id, r := range m {
		if r.State == statePlaced && !r.End.IsZero() && now.Sub(r.End) > pruneEvery {
			delete(m, id)
			continue
		}
		out = append(out, r)
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Start.Equal(out[j].Start) {
			return out[i].Start.Before(out[j].Start)
		}
		return out[i].Seq < out[j].Seq
	})
	return out, nil
}

// queued returns the ids of stream's queued cues, by sequence number, and
// those other nodes sent notices of.
func (s *ClusterStore) queued(stream string) []string {
	recs, _ := s.OpenCues(stream)
	sort.Slice(recs, func(i, j int) bool { return recs[i].Seq < recs[j].Seq })
	var out []string
	seen := map[string]bool{}
	for _, r := range recs {
		if r.State == StateQueued {
			out = append(out, r.Cue.ID)
			seen[r.Cue.ID] = true
		}
	}
	for _, id := range s.takeHints(stream, "queued") {
		if !seen[id] {
			out = append(out, id)
		}
	}
	return out
}

// RequestEnd asks stream's owner to end cue id (a DELETE that reached
// another node).
func (s *ClusterStore) RequestEnd(stream, id string, now time.Time) error {
	ctx, cancel := s.ctx()
	defer cancel()
	if _, err := s.bkt().Put(ctx, endKey(stream, id), []byte(now.UTC().Format(time.RFC3339Nano))); err != nil {
		return s.failed("write", err)
	}
	s.notify("end", stream, id)
	return nil
}

// ClearEnd removes the end request of cue id once it is served.
func (s *ClusterStore) ClearEnd(stream, id string) error {
	ctx, cancel := s.ctx()
	defer cancel()
	if err := s.bkt().Delete(ctx, endKey(stream, id)); err != nil {
		return s.failed("write", err)
	}
	return nil
}

// endRequests returns the ids of stream's cues that are asked to end.
func (s *ClusterStore) endRequests(stream string) []string {
	hinted := s.takeHints(stream, "end")
	s.mu.Lock()
	set := map[string]bool{}
	for id := range s.ends[stream] {
		set[id] = true
	}
	s.mu.Unlock()
	for _, id := range hinted {
		set[id] = true
	}
	out := make([]string, 0, len(set))
	for id := range set {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}
