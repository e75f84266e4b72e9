// Package audience is the viewers' side of a live sale: the signals their
// pages send (heartbeats, impressions, Buy clicks, hearts, poll votes), the
// pulse every page reads back (viewers now, recent hearts, open poll
// tallies), and the studio's live view of it (the funnel per product).
//
//	POST /api/v1/streams/{name}/signals   202; viewer traffic, no admin token
//	GET  /live/{name}/pulse.json          200, cacheable for PulseMaxAge
//	GET  /api/v1/streams/{name}/audience  200, the studio's view (admin rule)
//
// Signals only ever move counters. Memory is bounded whatever viewers
// send: per stream a fixed ring of seconds for heartbeats and reactions,
// a capped set of tracked viewers, polls and products, and one token bucket
// per viewer and per client address, all with caps from the config; no
// signal is ever kept as such. docs/audience.md is the reference.
package audience

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Streams tells which streams are live; packager.Manager implements it.
type Streams interface {
	HasStream(name string) bool
}

// Polls tells whether a poll of a stream is open, and its number of
// options; the cue service implements it.
type Polls interface {
	OpenPoll(stream, id string) (options int, ok bool)
}

// TokenVerifier checks a play token for a stream; origin.PlayAuth
// implements it.
type TokenVerifier interface {
	Verify(name, token string, now time.Time) (time.Time, error)
}

// Audience keeps the signals of every live stream. Set its fields, then
// call Start (or let the first request do it) and Run.
type Audience struct {
	// Streams tells which streams are live: signals, pulses and the studio
	// view of other names are 404. It is required.
	Streams Streams
	// Polls tells which polls are open: a vote for a poll it does not
	// report open is refused. Nil refuses every vote. It defaults to nil.
	Polls Polls
	// PlayAuth, when set, requires a valid play token of the stream on
	// signals and pulses (?token=), as on the stream's files. It defaults
	// to nil: none needed.
	PlayAuth TokenVerifier
	// AdminToken is the bearer token of the studio view (the cue API's);
	// empty serves it to direct loopback clients only (package adminauth).
	// It defaults to empty.
	AdminToken string
	// CORSOrigin is the Access-Control-Allow-Origin of the pulse. It
	// defaults to "*".
	CORSOrigin string
	// HeartbeatInterval is how often a page sends a heartbeat (the pulse
	// tells the page). A viewer counts as watching for two intervals after
	// its last one, so one lost beat does not drop it. It defaults to 10s.
	HeartbeatInterval time.Duration
	// ReactionWindow is how far back the pulse counts reactions. It
	// defaults to 5s.
	ReactionWindow time.Duration
	// PulseMaxAge is the pulse's max-age and s-maxage. It defaults to 1s.
	PulseMaxAge time.Duration
	// MaxBodyBytes caps one POST's body (413 beyond). It defaults to 4096.
	MaxBodyBytes int
	// MaxBatch caps the signals of one POST. It defaults to 10.
	MaxBatch int
	// ViewerRate is how many signals a second one viewer id may send, as a
	// token bucket holding two seconds' worth. It defaults to 5.
	ViewerRate float64
	// AddressRate is how many POSTs a second one client address may make,
	// as a token bucket holding two seconds' worth. Viewers behind one NAT
	// share it. It defaults to 100.
	AddressRate float64
	// MaxViewers caps the viewer ids tracked at once, over all streams
	// (about 150 bytes each); a new viewer beyond it is refused with 503
	// until idle ones are forgotten. It defaults to 100000.
	MaxViewers int
	// MaxAddresses caps the client addresses rate-limited at once. It
	// defaults to 10000.
	MaxAddresses int
	// MaxStreams caps the streams tracked at once. It defaults to 100.
	MaxStreams int
	// MaxPolls caps the polls tallied per stream; the oldest is forgotten
	// first. It defaults to 16.
	MaxPolls int
	// MaxProducts caps the products (cues) with a funnel per stream; the
	// one seen longest ago is forgotten first. It defaults to 256.
	MaxProducts int
	// Logger receives the audience's logs. It defaults to slog.Default().
	Logger *slog.Logger

	once    sync.Once
	now     func() time.Time // tests replace it
	addrs   *addrLimiter
	tracked atomic.Int64 // viewers over all streams

	mu        sync.Mutex
	streams   map[string]*stream
	lastSweep int64

	accepted [numKinds]atomic.Uint64
	refused  [numKinds + 1][numReasons]atomic.Uint64 // [numKinds]: kind unknown
}

// Defaults of the Audience fields.
const (
	defaultHeartbeatInterval = 10 * time.Second
	defaultReactionWindow    = 5 * time.Second
	defaultPulseMaxAge       = time.Second
	defaultMaxBodyBytes      = 4096
	defaultMaxBatch          = 10
	defaultViewerRate        = 5
	defaultAddressRate       = 100
	defaultMaxViewers        = 100000
	defaultMaxAddresses      = 10000
	defaultMaxStreams        = 100
	defaultMaxPolls          = 16
	defaultMaxProducts       = 256
	// burstSeconds is how many seconds of its rate a bucket holds.
	burstSeconds = 2
	// minuteSeconds is the span of the studio's reactions per minute, and
	// so the reaction ring's length.
	minuteSeconds = 60
)

// Start applies the defaults. ServeHTTP calls it if the wiring did not.
func (a *Audience) Start() { a.once.Do(a.init) }

func (a *Audience) init() {
	setDur(&a.HeartbeatInterval, defaultHeartbeatInterval)
	setDur(&a.ReactionWindow, defaultReactionWindow)
	setDur(&a.PulseMaxAge, defaultPulseMaxAge)
	setInt(&a.MaxBodyBytes, defaultMaxBodyBytes)
	setInt(&a.MaxBatch, defaultMaxBatch)
	setInt(&a.MaxViewers, defaultMaxViewers)
	setInt(&a.MaxAddresses, defaultMaxAddresses)
	setInt(&a.MaxStreams, defaultMaxStreams)
	setInt(&a.MaxPolls, defaultMaxPolls)
	setInt(&a.MaxProducts, defaultMaxProducts)
	if a.ViewerRate <= 0 {
		a.ViewerRate = defaultViewerRate
	}
	if a.AddressRate <= 0 {
		a.AddressRate = defaultAddressRate
	}
	if a.CORSOrigin == "" {
		a.CORSOrigin = "*"
	}
	if a.Logger == nil {
		a.Logger = slog.Default()
	}
	if a.now == nil {
		a.now = time.Now
	}
	a.ReactionWindow = min(a.ReactionWindow, minuteSeconds*time.Second)
	a.addrs = newAddrLimiter(a.AddressRate, max(1, burstSeconds*a.AddressRate), a.MaxAddresses)
	a.streams = map[string]*stream{}
}

func setDur(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

func setInt(n *int, def int) {
	if *n <= 0 {
		*n = def
	}
}

// viewerWindow is how long after its last heartbeat a viewer counts.
func (a *Audience) viewerWindow() time.Duration { return 2 * a.HeartbeatInterval }

// viewerBurst is the capacity of a viewer's bucket: at least a full batch.
func (a *Audience) viewerBurst() float64 {
	return max(burstSeconds*a.ViewerRate, float64(a.MaxBatch))
}

// Run forgets idle viewers, clients and ended streams every half heartbeat
// interval until ctx ends.
func (a *Audience) Run(ctx context.Context) {
	a.Start()
	t := time.NewTicker(a.HeartbeatInterval / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			a.sweep(a.now().UnixNano(), true)
		}
	}
}

// sweep forgets the viewers that are neither counted nor rate-limited any
// more, and the streams that ended and went quiet. Unless forced it runs
// at most once a second: a full table of active viewers would otherwise
// make every newcomer pay a scan.
func (a *Audience) sweep(now int64, force bool) {
	a.mu.Lock()
	if !force && now-a.lastSweep < int64(time.Second) {
		a.mu.Unlock()
		return
	}
	a.lastSweep = now
	all := make(map[string]*stream, len(a.streams))
	for k, s := range a.streams {
		all[k] = s
	}
	a.mu.Unlock()
	idle := int64(a.viewerWindow())
	for name, s := range all {
		s.mu.Lock()
		for id, v := range s.viewers {
			if now-v.last > idle && v.bucket.full(a.ViewerRate, a.viewerBurst(), now) {
				delete(s.viewers, id)
				a.tracked.Add(-1)
			}
		}
		quiet := now-s.lastSignal > idle
		s.mu.Unlock()
		if quiet && !a.Streams.HasStream(name) {
			a.mu.Lock()
			if a.streams[name] == s {
				delete(a.streams, name)
				s.mu.Lock()
				a.tracked.Add(-int64(len(s.viewers)))
				s.viewers, s.dead = map[string]*viewer{}, true
				s.mu.Unlock()
			}
			a.mu.Unlock()
		}
	}
	if force {
		a.addrs.mu.Lock()
		a.addrs.lastSweep = 0
		a.addrs.sweepLocked(now)
		a.addrs.mu.Unlock()
	}
}

// stream returns the state of a live stream, creating it; nil when the
// table of streams is full.
func (a *Audience) stream(name string, create bool) *stream {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.streams[name]
	if s == nil && create && len(a.streams) < a.MaxStreams {
		s = newStream(a)
		a.streams[name] = s
	}
	return s
}

// Tally returns the votes of each option of a poll, or nil when nobody
// voted in it (or it was forgotten). The cue service reads it when the
// poll closes, for its result.
func (a *Audience) Tally(stream, pollID string) []int64 {
	a.Start()
	s := a.stream(stream, false)
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.polls[pollID]
	if p == nil {
		return nil
	}
	return append([]int64(nil), p.counts...)
}

// Stats is what the audience counted, for metrics.
type Stats struct {
	// Accepted is the signals taken, by kind.
	Accepted map[string]uint64
	// Refused is the signals (or requests, when their kind is not known
	// yet) refused, by kind and reason.
	Refused []Refused
	// Viewers is the viewers now of each tracked stream.
	Viewers map[string]int64
	// TrackedViewers is how many viewer ids are held, over all streams.
	TrackedViewers int64
	// TrackedAddresses is how many client addresses are rate-limited.
	TrackedAddresses int
}

// Refused is one count of Stats.Refused.
type Refused struct {
	Kind, Reason string
	N            uint64
}

// Stats returns the counts so far.
func (a *Audience) Stats() Stats {
	a.Start()
	st := Stats{Accepted: map[string]uint64{}, Viewers: map[string]int64{}, TrackedViewers: a.tracked.Load(), TrackedAddresses: a.addrs.len()}
	for k := range numKinds {
		st.Accepted[k.String()] = a.accepted[k].Load()
	}
	for k := range numKinds + 1 {
		for r := range numReasons {
			if n := a.refused[k][r].Load(); n > 0 {
				st.Refused = append(st.Refused, Refused{Kind: Kind(k).String(), Reason: r.String(), N: n})
			}
		}
	}
	now := a.now()
	a.mu.Lock()
	all := make(map[string]*stream, len(a.streams))
	for k, s := range a.streams {
		all[k] = s
	}
	a.mu.Unlock()
	for name, s := range all {
		s.mu.Lock()
		st.Viewers[name] = s.viewersNow(now)
		s.mu.Unlock()
	}
	return st
}

// Reason is why a signal was refused.
type Reason uint8

// The reasons of refusals.
const (
	ReasonBadRequest Reason = iota
	ReasonTooLarge
	ReasonForbidden
	ReasonUnknownStream
	ReasonRateViewer
	ReasonRateAddress
	ReasonCapacity
	ReasonPollClosed
	ReasonDuplicateVote
	numReasons
)

var reasonNames = [numReasons]string{"bad_request", "too_large", "forbidden", "unknown_stream",
	"rate_viewer", "rate_address", "capacity", "poll_closed", "duplicate_vote"}

func (r Reason) String() string { return reasonNames[r] }

func (a *Audience) refuse(k Kind, r Reason, n int) {
	if k > numKinds {
		k = numKinds
	}
	a.refused[k][r].Add(uint64(n))
}

// refuseAll counts a refusal of every signal of req, or of the request
// when it has none decoded.
func (a *Audience) refuseAll(req *Request, r Reason) {
	if req == nil {
		a.refuse(numKinds, r, 1)
		return
	}
	for _, s := range req.Signals {
		a.refuse(s.Kind, r, 1)
	}
}
