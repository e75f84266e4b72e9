package audience

import (
	"sync"
	"time"
)

// stream is one stream's counters, under its own lock: signals of one
// stream never wait for another's.
type stream struct {
	a *Audience

	mu      sync.Mutex
	dead    bool // forgotten by sweep: a signal holding it looks again
	viewers map[string]*viewer
	// beats counts the viewers by the second of their last heartbeat.
	beats          ring
	reactions      ring
	reactionsTotal int64
	polls          map[string]*poll
	pollOrder      []string // oldest first, for MaxPolls
	products       map[string]*product
	lastSignal     int64 // Unix ns
	pulse          pulseCache
}

// viewer is one viewer id of a stream: its rate bucket and the second of
// its last heartbeat.
type viewer struct {
	bucket  bucket
	last    int64 // Unix ns of its last signal
	beatSec int64 // 0: no heartbeat yet
}

// poll is the tally of one poll, and who voted in it.
type poll struct {
	counts []int64
	voters map[string]struct{}
}

// product is the funnel of one product card (cue).
type product struct {
	sku                 string
	impressions, clicks int64
	seen                int64 // Unix ns
}

func newStream(a *Audience) *stream {
	return &stream{
		a:         a,
		viewers:   map[string]*viewer{},
		beats:     newRing(int(a.viewerWindow()/time.Second) + 2),
		reactions: newRing(minuteSeconds + 1),
		polls:     map[string]*poll{},
		products:  map[string]*product{},
	}
}

func (s *stream) viewersNow(now time.Time) int64 {
	return s.beats.sum(now.Unix(), int(s.a.viewerWindow()/time.Second))
}

// outcome is what became of one signal.
type outcome struct {
	index  int
	reason Reason
}

// apply takes a request's signals at now. ok is false when the viewer's
// rate limit (or the viewer table) refused the whole request; wait is then
// the time until it would pass. Otherwise refused lists the signals not
// counted (a vote for a closed poll, a second vote).
func (s *stream) apply(req *Request, now time.Time, polls func(id string) (int, bool)) (refused []outcome, reason Reason, wait time.Duration, ok bool) {
	a := s.a
	ns := now.UnixNano()
	v := s.viewers[req.Viewer]
	if v == nil {
		if a.tracked.Load() >= int64(a.MaxViewers) {
			return nil, ReasonCapacity, time.Second, false
		}
		v = &viewer{bucket: bucket{tokens: a.viewerBurst(), last: ns}}
		s.viewers[req.Viewer] = v
		a.tracked.Add(1)
	}
	v.last = ns
	s.lastSignal = ns
	if ok, wait := v.bucket.take(float64(len(req.Signals)), a.ViewerRate, a.viewerBurst(), ns); !ok {
		return nil, ReasonRateViewer, wait, false
	}
	sec := now.Unix()
	for i, sig := range req.Signals {
		switch sig.Kind {
		case KindHeartbeat:
			if v.beatSec != 0 {
				s.beats.sub(v.beatSec)
			}
			v.beatSec = sec
			s.beats.add(sec, 1)
		case KindReaction:
			s.reactions.add(sec, 1)
			s.reactionsTotal++
		case KindImpression, KindClick:
			p := s.product(sig.Cue, ns)
			if sig.Kind == KindImpression {
				p.impressions++
			} else {
				p.clicks++
				p.sku = sig.SKU
			}
		case KindVote:
			if r, counted := s.vote(req.Viewer, sig, polls); !counted {
				refused = append(refused, outcome{index: i, reason: r})
			}
		}
	}
	return refused, 0, 0, true
}

// product returns the funnel of cue, forgetting the one seen longest ago
// when the stream has MaxProducts.
func (s *stream) product(cue string, ns int64) *product {
	p := s.products[cue]
	if p == nil {
		if len(s.products) >= s.a.MaxProducts {
			oldest, at := "", int64(0)
			for k, q := range s.products {
				if oldest == "" || q.seen < at {
					oldest, at = k, q.seen
				}
			}
			delete(s.products, oldest)
		}
		p = &product{}
		s.products[cue] = p
	}
	p.seen = ns
	return p
}

// vote counts a vote once per viewer and poll, only while the poll is
// open.
func (s *stream) vote(viewer string, sig Signal, polls func(id string) (int, bool)) (Reason, bool) {
	options, open := polls(sig.Poll)
	if !open || sig.Option >= options {
		return ReasonPollClosed, false
	}
	p := s.polls[sig.Poll]
	if p == nil {
		if len(s.pollOrder) >= s.a.MaxPolls {
			delete(s.polls, s.pollOrder[0])
			s.pollOrder = s.pollOrder[1:]
		}
		p = &poll{counts: make([]int64, options), voters: map[string]struct{}{}}
		s.polls[sig.Poll] = p
		s.pollOrder = append(s.pollOrder, sig.Poll)
	}
	if _, dup := p.voters[viewer]; dup {
		return ReasonDuplicateVote, false
	}
	if len(p.voters) >= s.a.MaxViewers {
		return ReasonCapacity, false
	}
	if sig.Option >= len(p.counts) {
		// The poll was reported with more options than at its first vote.
		p.counts = append(p.counts, make([]int64, sig.Option+1-len(p.counts))...)
	}
	p.voters[viewer] = struct{}{}
	p.counts[sig.Option]++
	return 0, true
}
