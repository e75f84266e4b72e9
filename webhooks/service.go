// Package webhooks tells a shop's backend what happens on its streams:
// stream.started, stream.ended, recording.ready, cue.started, cue.ended and
// poll.closed, as JSON POSTs signed the Standard Webhooks way
// (webhook-id, webhook-timestamp, webhook-signature).
//
// It never slows the live path: the packager hooks and the other entry
// points only put the news in a bounded queue (dropped and counted when it
// is full). One writer goroutine turns it into events and stores one
// delivery per event and endpoint in a durable outbox (a bbolt file,
// fsynced) before the event counts as emitted; one worker per endpoint
// sends them, in order within each stream, retrying failures with
// exponential backoff until the last attempt, and removes each once
// delivered or given up. An event in the outbox survives a crash and is
// sent after the restart: delivery is at least once, and receivers dedupe
// by webhook-id. The outbox is bounded: when full, the oldest deliveries
// are dropped (counted).
//
// Cue events happen on the stream's timeline: cue.started is sent at the
// cue's start (its program date-time), cue.ended at its end, so that a
// backend hears of a scheduled cue when viewers see it, not when it was
// posted.
package webhooks

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shopcast/shopcast/cues"
	"github.com/shopcast/shopcast/packager"
)

// CueRecords gives the record of a cue, for the cue's JSON in cue events
// and to tell a poll result; cues.Store implements it.
type CueRecords interface {
	Get(stream, id string) (cues.Record, error)
}

// Config sets up a Service. Zero fields take their defaults.
type Config struct {
	// Endpoints receive the events. None: the Service takes nothing in
	// and opens no outbox.
	Endpoints []Endpoint
	// Path is the outbox file (bbolt), created when missing. Required
	// with Endpoints.
	Path string
	// MaxOutbox caps the deliveries waiting in the outbox; beyond it the
	// oldest are dropped (counted). It defaults to 10000.
	MaxOutbox int
	// Queue is how many pieces of news may wait for the writer; more are
	// dropped (counted) rather than waited for. It defaults to 1024.
	Queue int
	// Attempts is how many times a delivery is tried before it is given
	// up. It defaults to 8.
	Attempts int
	// BackoffBase is the wait after the first failed attempt; each
	// further failure doubles it, up to BackoffMax. They default to 1s
	// and 5m.
	BackoffBase time.Duration
	BackoffMax  time.Duration
	// Timeout bounds one attempt, from connecting to the response
	// headers; a receiver slower than this has failed the attempt. It
	// defaults to 10s.
	Timeout time.Duration
	// Cues reads cue records. It defaults to nil: cue events carry no cue
	// JSON, and no poll.closed is sent.
	Cues CueRecords
	// Logger receives the service's logs. It defaults to discarding them.
	Logger *slog.Logger
	// LockTimeout is how long Start waits for another process holding
	// the outbox. It defaults to 1s.
	LockTimeout time.Duration
}

// Stats are the service's counters, for metrics.
type Stats struct {
	Delivered int64 // deliveries answered 2xx
	Retried   int64 // failed attempts that will be tried again
	Failed    int64 // deliveries given up after the last attempt
	Dropped   int64 // news or deliveries dropped: queue or outbox full
	Depth     int64 // deliveries in the outbox
}

// Service emits webhooks. New it, Start it, hand its Hooks, StreamStarted
// and RecordingReady to the components that see the news, and Close it
// after them.
type Service struct {
	cfg    Config
	log    *slog.Logger
	client *http.Client
	now    func() time.Time // tests replace it

	in     chan input
	closed atomic.Bool
	stop   context.CancelFunc
	ctx    context.Context
	done   chan struct{}
	wg     sync.WaitGroup

	// mu guards the deliveries in memory and the outbox writes, so that
	// the two always agree. Held by the writer for a batch and by a
	// worker around a delivery's bookkeeping, never during a request.
	mu     sync.Mutex
	box    *outbox
	eps    []*endpoint
	all    map[uint64]*delivery
	seq    uint64
	cueIDs map[string]*cueSeen

	delivered, retried, failed, dropped, depth atomic.Int64
	dropLogged                                 atomic.Int64 // unix ns of the last "queue full" line
}

// endpoint is an Endpoint with its worker's state.
type endpoint struct {
	Endpoint
	key  []byte
	wake chan struct{}
	// streams holds the endpoint's deliveries by stream, each sorted by
	// (Due, Seq): the order they are sent in.
	streams map[string][]*delivery
}

// cueSeen is what was emitted for one cue in one session.
type cueSeen struct {
	started, ended bool
}

// input is one piece of news.
type input struct {
	at      time.Time
	start   string
	ev      *packager.EventInfo
	end     *packager.StreamEnd
	rec     *recordingNews
	flushed chan struct{} // closed once everything before it is stored
}

type recordingNews struct{ stream, id, url string }

// New checks cfg and returns a Service; Start opens its outbox.
func New(cfg Config) (*Service, error) {
	var errs []error
	for i := range cfg.Endpoints {
		if err := cfg.Endpoints[i].Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if len(cfg.Endpoints) > 0 && cfg.Path == "" {
		errs = append(errs, errNoPath)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.MaxOutbox <= 0 {
		cfg.MaxOutbox = 10000
	}
	if cfg.Queue <= 0 {
		cfg.Queue = 1024
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = 8
	}
	if cfg.BackoffBase <= 0 {
		cfg.BackoffBase = time.Second
	}
	if cfg.BackoffMax <= 0 {
		cfg.BackoffMax = 5 * time.Minute
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.LockTimeout <= 0 {
		cfg.LockTimeout = time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Service{
		cfg: cfg, log: log, now: time.Now,
		in: make(chan input, cfg.Queue), done: make(chan struct{}),
		all: map[uint64]*delivery{}, cueIDs: map[string]*cueSeen{},
		client: &http.Client{
			// A redirect is not followed: the endpoint is the URL
			// configured, and a 3xx is a failed attempt.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	for _, e := range cfg.Endpoints {
		key, _ := decodeSecret(e.Secret) // checked above
		s.eps = append(s.eps, &endpoint{Endpoint: e, key: key, wake: make(chan struct{}, 1), streams: map[string][]*delivery{}})
	}
	return s, nil
}

// Start opens the outbox, takes back what it holds (deliveries for
// endpoints no longer configured are dropped) and starts the writer and
// the workers. Without endpoints it does nothing.
func (s *Service) Start() error {
	s.ctx, s.stop = context.WithCancel(context.Background())
	if len(s.eps) == 0 {
		close(s.done)
		return nil
	}
	box, err := openOutbox(s.cfg.Path, s.cfg.LockTimeout)
	if err != nil {
		return err
	}
	ds, bad, err := box.load()
	if err != nil {
		_ = box.close()
		return err
	}
	if bad > 0 {
		s.log.Warn("webhook outbox: records that do not decode were removed", "count", bad)
	}
	s.box = box
	var orphans []uint64
	for _, d := range ds {
		s.seq = max(s.seq, d.Seq)
		i := slices.IndexFunc(s.eps, func(e *endpoint) bool { return e.URL == d.Endpoint })
		if i < 0 {
			orphans = append(orphans, d.Seq)
			continue
		}
		d.ep = s.eps[i]
		s.insert(d)
	}
	if len(orphans) > 0 {
		s.log.Warn("webhook outbox: deliveries to endpoints no longer configured were dropped", "count", len(orphans))
		s.dropped.Add(int64(len(orphans)))
	}
	// Every session of the process that wrote the outbox has ended with
	// it (a new process starts new sessions): their cues ended no later
	// than now.
	w := &write{}
	s.endCues(func(*delivery) bool { return true }, s.now(), w)
	w.del = append(w.del, orphans...)
	if err := box.write(w.putList(), w.del); err != nil {
		s.log.Error("webhook outbox write failed", "err", err)
	}
	s.depth.Store(int64(len(s.all)))
	if len(s.all) > 0 {
		s.log.Info("webhook outbox: resuming deliveries", "count", len(s.all))
	}
	go s.run()
	for _, ep := range s.eps {
		s.wg.Go(func() { s.work(ep) })
	}
	return nil
}

// Close stores what is queued, stops the workers (a request in flight is
// cut short; it stays in the outbox) and closes the outbox.
func (s *Service) Close() {
	if s.closed.Swap(true) || s.stop == nil {
		return
	}
	if s.box != nil {
		// Wakes the writer, which drains and stops; a full queue wakes
		// it anyway.
		select {
		case s.in <- input{}:
		default:
		}
	}
	<-s.done
	s.stop()
	s.wg.Wait()
	if s.box != nil {
		if err := s.box.close(); err != nil {
			s.log.Warn("webhook outbox close failed", "err", err)
		}
	}
}

// Stats returns the counters.
func (s *Service) Stats() Stats {
	return Stats{
		Delivered: s.delivered.Load(),
		Retried:   s.retried.Load(),
		Failed:    s.failed.Load(),
		Dropped:   s.dropped.Load(),
		Depth:     s.depth.Load(),
	}
}

// Hooks returns the packager hooks that feed the service: cue placements
// and stream ends. They only queue.
func (s *Service) Hooks() packager.Hooks {
	return packager.Hooks{
		OnEvent:     func(ei packager.EventInfo) { s.put(input{ev: &ei}) },
		OnStreamEnd: func(se packager.StreamEnd) { s.put(input{end: &se}) },
	}
}

// StreamStarted queues stream.started (packager.Config.OnStreamStart).
func (s *Service) StreamStarted(stream string) { s.put(input{start: stream}) }

// RecordingReady queues recording.ready for the recording id of stream,
// served at path url.
func (s *Service) RecordingReady(stream, id, url string) {
	s.put(input{rec: &recordingNews{stream: stream, id: id, url: url}})
}

// Flush waits until everything queued before it is in the outbox, or ctx
// ends. For tests and orderly handovers.
func (s *Service) Flush(ctx context.Context) error {
	if len(s.eps) == 0 || s.closed.Load() {
		return nil
	}
	ch := make(chan struct{})
	select {
	case s.in <- input{flushed: ch}:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// put queues news without waiting: called with the packager's stream
// lock held.
func (s *Service) put(in input) {
	if len(s.eps) == 0 || s.closed.Load() {
		return
	}
	in.at = s.now()
	select {
	case s.in <- in:
	default:
		s.dropped.Add(1)
		// One line a second at most: a flood must not become one of log
		// lines under the stream's lock.
		if last := s.dropLogged.Load(); in.at.UnixNano()-last >= int64(time.Second) && s.dropLogged.CompareAndSwap(last, in.at.UnixNano()) {
			s.log.Warn("webhook queue full: events dropped", "stream", in.stream(), "webhook_queue", s.cfg.Queue, "dropped_total", s.dropped.Load())
		}
	}
}

func (in *input) stream() string {
	switch {
	case in.ev != nil:
		return in.ev.Stream
	case in.end != nil:
		return in.end.Stream
	case in.rec != nil:
		return in.rec.stream
	}
	return in.start
}

// maxBatch is how many pieces of news share one outbox commit.
const maxBatch = 256

// run is the writer goroutine: it turns news into deliveries and stores
// them, a batch per commit.
func (s *Service) run() {
	defer close(s.done)
	for {
		first := <-s.in
		batch := []input{first}
	drain:
		for len(batch) < maxBatch {
			select {
			case in := <-s.in:
				batch = append(batch, in)
			default:
				break drain
			}
		}
		s.store(batch)
		if s.closed.Load() && len(s.in) == 0 {
			return
		}
	}
}

// store applies a batch to memory and the outbox, then wakes the workers.
func (s *Service) store(batch []input) {
	s.mu.Lock()
	w := &write{}
	for i := range batch {
		s.apply(&batch[i], w)
	}
	s.dropOldest(w)
	err := s.box.write(w.putList(), w.del)
	s.depth.Store(int64(len(s.all)))
	s.mu.Unlock()
	if err != nil {
		// Kept in memory and sent; only a crash before then loses them.
		s.log.Error("webhook outbox write failed: events are sent but would not survive a restart", "err", err)
	}
	for _, ep := range s.eps {
		signal(ep.wake)
	}
	for i := range batch {
		if batch[i].flushed != nil {
			close(batch[i].flushed)
		}
	}
}

// write collects one commit.
type write struct {
	put map[uint64]*delivery
	del []uint64
}

func (w *write) upsert(d *delivery) {
	if w.put == nil {
		w.put = map[uint64]*delivery{}
	}
	w.put[d.Seq] = d
}

func (w *write) remove(d *delivery) {
	delete(w.put, d.Seq)
	w.del = append(w.del, d.Seq)
}

func (w *write) putList() []*delivery {
	out := make([]*delivery, 0, len(w.put))
	for _, d := range w.put {
		out = append(out, d)
	}
	return out
}

// apply turns one piece of news into deliveries. Called with s.mu held.
func (s *Service) apply(in *input, w *write) {
	switch {
	case in.ev != nil:
		s.applyEvent(in.ev, in.at, w)
	case in.end != nil:
		s.applyEnd(in.end, in.at, w)
	case in.rec != nil:
		s.emit(w, "", in.at, Message{Type: RecordingReady, Timestamp: in.at, Data: Data{
			Stream: in.rec.stream, RecordingID: in.rec.id, RecordingURL: in.rec.url,
		}})
	case in.start != "":
		s.emit(w, "", in.at, Message{Type: StreamStarted, Timestamp: in.at, Data: Data{Stream: in.start}})
	}
}

// cueKey names one cue in one session of a stream.
func cueKey(stream string, session int64, id string) string {
	return stream + "\x00" + strconv.FormatInt(session, 10) + "\x00" + id
}

func (s *Service) applyEvent(ei *packager.EventInfo, at time.Time, w *write) {
	k := cueKey(ei.Stream, ei.Session, ei.Event.ID)
	if ei.Cancelled {
		// Ended before it began: nothing of it is sent.
		s.forKey(ei.Stream, k, func(d *delivery) bool { return true }, func(d *delivery) { s.remove(d, w) })
		delete(s.cueIDs, k)
		return
	}
	seen := s.cueIDs[k]
	if seen == nil {
		seen = &cueSeen{}
		s.cueIDs[k] = seen
	}
	data := Data{Stream: ei.Stream, Session: ei.Session, CueID: ei.Event.ID, Start: mediaTime(ei.Start.Media, ei.Start.Wall)}
	if !ei.End.Wall.IsZero() {
		data.End = mediaTime(ei.End.Media, ei.End.Wall)
	}
	typ := ""
	if s.cfg.Cues != nil {
		rec, err := s.cfg.Cues.Get(ei.Stream, ei.Event.ID)
		switch {
		case err == nil:
			typ = rec.Cue.Type
			if b, err := json.Marshal(&rec.Cue); err == nil {
				data.Cue = b
			}
		case !errors.Is(err, cues.ErrCueNotFound):
			s.log.Warn("webhooks: cue record not read", "stream", ei.Stream, "cue", ei.Event.ID, "err", err)
		}
	}
	if !seen.started {
		seen.started = true
		due := later(ei.Start.Wall, at)
		s.emit(w, k, due, Message{Type: CueStarted, Timestamp: ei.Start.Wall, Data: data})
		if typ == PollResultType {
			s.emit(w, k, due, Message{Type: PollClosed, Timestamp: ei.Start.Wall, Data: data})
		}
	}
	if data.End == nil {
		return
	}
	// The end is known, or moved (a cue deleted before its duration ran
	// out): a cue.ended not yet sent takes the new time.
	moved := false
	s.forKey(ei.Stream, k, func(d *delivery) bool { return d.Msg.Type == CueEnded }, func(d *delivery) {
		moved = true
		if d.inflight {
			return
		}
		d.Msg.Data.End, d.Msg.Timestamp = data.End, data.End.Wall
		s.reschedule(d, later(data.End.Wall, at), w)
	})
	if !moved && !seen.ended {
		seen.ended = true
		s.emit(w, k, later(data.End.Wall, at), Message{Type: CueEnded, Timestamp: data.End.Wall, Data: data})
	}
}

// applyEnd sends stream.ended after what the session's cues had pending.
func (s *Service) applyEnd(se *packager.StreamEnd, at time.Time, w *write) {
	s.endCues(func(d *delivery) bool { return d.Msg.Data.Stream == se.Stream && d.Msg.Data.Session == se.Session }, at, w)
	for k := range s.cueIDs {
		if strings.HasPrefix(k, cueKey(se.Stream, se.Session, "")) {
			delete(s.cueIDs, k)
		}
	}
	s.emit(w, "", at, Message{Type: StreamEnded, Timestamp: at, Data: Data{Stream: se.Stream, Session: se.Session}})
}

// endCues settles the pending cue events of the sessions that ended at
// at (those of which match is true): a cue that had not started is
// dropped, one that had not ended ends at at.
func (s *Service) endCues(match func(*delivery) bool, at time.Time, w *write) {
	notStarted := map[string]bool{}
	for _, ep := range s.eps {
		for _, q := range ep.streams {
			for _, d := range q {
				if d.Key != "" && match(d) && d.Msg.Type == CueStarted && d.Due.After(at) && !d.inflight {
					notStarted[d.Key] = true
				}
			}
		}
	}
	for _, ep := range s.eps {
		for _, q := range ep.streams {
			for _, d := range slices.Clone(q) {
				switch {
				case d.Key == "" || !match(d) || d.inflight:
				case notStarted[d.Key]:
					s.remove(d, w)
				case d.Msg.Type == CueEnded && d.Due.After(at):
					d.Msg.Data.End, d.Msg.Timestamp = &Time{Wall: at}, at
					s.reschedule(d, at, w)
				}
			}
		}
	}
}

// forKey calls do for each delivery of cue key k that match picks.
func (s *Service) forKey(stream, k string, match func(*delivery) bool, do func(*delivery)) {
	for _, ep := range s.eps {
		for _, d := range slices.Clone(ep.streams[stream]) {
			if d.Key == k && match(d) {
				do(d)
			}
		}
	}
}

// emit adds one delivery of msg per endpoint that wants its type, all
// with one webhook-id, due at due.
func (s *Service) emit(w *write, key string, due time.Time, msg Message) {
	id := newID()
	for _, ep := range s.eps {
		if !ep.wants(msg.Type) {
			continue
		}
		s.seq++
		d := &delivery{Seq: s.seq, Endpoint: ep.URL, ID: id, Key: key, Due: due, Msg: msg, ep: ep}
		s.insert(d)
		w.upsert(d)
	}
}

// dropOldest removes the oldest deliveries beyond MaxOutbox.
func (s *Service) dropOldest(w *write) {
	over := len(s.all) - s.cfg.MaxOutbox
	if over <= 0 {
		return
	}
	seqs := make([]uint64, 0, len(s.all))
	for seq := range s.all {
		seqs = append(seqs, seq)
	}
	slices.Sort(seqs)
	for _, seq := range seqs[:over] {
		d := s.all[seq]
		s.remove(d, w)
		d.gone = true
	}
	s.dropped.Add(int64(over))
	s.log.Warn("webhook outbox full: oldest deliveries dropped", "count", over, "webhook_outbox_max", s.cfg.MaxOutbox)
}

// insert puts d in memory, in its stream's order.
func (s *Service) insert(d *delivery) {
	s.all[d.Seq] = d
	q := append(d.ep.streams[d.Msg.Data.Stream], d)
	slices.SortStableFunc(q, deliveryOrder)
	d.ep.streams[d.Msg.Data.Stream] = q
}

// remove takes d out of memory and, through w, out of the outbox.
func (s *Service) remove(d *delivery, w *write) {
	s.unlink(d)
	w.remove(d)
}

func (s *Service) unlink(d *delivery) {
	delete(s.all, d.Seq)
	q := d.ep.streams[d.Msg.Data.Stream]
	if i := slices.Index(q, d); i >= 0 {
		q = slices.Delete(q, i, i+1)
	}
	if len(q) == 0 {
		delete(d.ep.streams, d.Msg.Data.Stream)
	} else {
		d.ep.streams[d.Msg.Data.Stream] = q
	}
}

func (s *Service) reschedule(d *delivery, due time.Time, w *write) {
	d.Due = due
	slices.SortStableFunc(d.ep.streams[d.Msg.Data.Stream], deliveryOrder)
	w.upsert(d)
}

// deliveryOrder is the order within a stream: by when the event happens,
// then by when it was emitted.
func deliveryOrder(a, b *delivery) int {
	if c := a.Due.Compare(b.Due); c != 0 {
		return c
	}
	switch {
	case a.Seq < b.Seq:
		return -1
	case a.Seq > b.Seq:
		return 1
	}
	return 0
}

// newID is a webhook-id: "msg_" and 26 random base32 characters.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return "msg_" + base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:])
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// later is the later of two times.
func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
