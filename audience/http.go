package audience

import (
	"encoding/json"
	"errors"
	"hash/fnv"
	"io"
	"math"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shopcast/shopcast/internal/adminauth"
)

// Register mounts the signals endpoint and the studio view with mount
// (origin.Server.Handle). The pulse lives under /live/ and is mounted
// apart: see Pulse.
func (a *Audience) Register(mount func(pattern string, h http.Handler)) {
	a.Start()
	mount("POST /api/v1/streams/{name}/signals", http.HandlerFunc(a.serveSignals))
	mount("OPTIONS /api/v1/streams/{name}/signals", http.HandlerFunc(a.preflightSignals))
	mount("GET /api/v1/streams/{name}/audience", http.HandlerFunc(a.serveStudio))
}

// Pulse serves GET /live/{name}/pulse.json; the handler reads the name
// with r.PathValue("name").
func (a *Audience) Pulse() http.Handler {
	a.Start()
	return http.HandlerFunc(a.servePulse)
}

type apiError struct {
	Error   string `json:"error"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message,omitempty"`
	Limit   int    `json:"limit,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// clientAddr is the TCP peer's address, never a forwarding header: anyone
// can write one, and a flood would spread itself over made-up clients.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// retryAfter answers 429 (or 503) with Retry-After in whole seconds (RFC
// 9110 10.2.3).
func retryAfter(w http.ResponseWriter, status int, wait time.Duration, msg string) {
	w.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(wait.Seconds())))))
	writeJSON(w, status, apiError{Error: msg})
}

// playToken checks the request's ?token= when play tokens are on.
func (a *Audience) playToken(r *http.Request, stream string) bool {
	if a.PlayAuth == nil {
		return true
	}
	_, err := a.PlayAuth.Verify(stream, r.URL.Query().Get("token"), a.now())
	return err == nil
}

// signalResponse is the 202 of a POST.
type signalResponse struct {
	Accepted int           `json:"accepted"`
	Refused  []refusedJSON `json:"refused,omitempty"`
}

type refusedJSON struct {
	Index  int    `json:"index"`
	Reason string `json:"reason"`
}

// serveSignals takes a POST of signals. The order of the checks follows
// the cue API's: who may send (403), to what (404), how often from where
// (429), how much (413), what (400); then the viewer's own rate (429).
func (a *Audience) serveSignals(w http.ResponseWriter, r *http.Request) {
	a.Start()
	w.Header().Set("Cache-Control", "no-store")
	// A shop's own pages embed the player on another origin: they may
	// post (and read the answer), as they may read the stream's files.
	w.Header().Set("Access-Control-Allow-Origin", a.CORSOrigin)
	name := r.PathValue("name")
	if !a.playToken(r, name) {
		a.refuse(numKinds, ReasonForbidden, 1)
		writeJSON(w, http.StatusForbidden, apiError{Error: "a valid play token of this stream is required (?token=)"})
		return
	}
	if !a.Streams.HasStream(name) {
		a.refuse(numKinds, ReasonUnknownStream, 1)
		writeJSON(w, http.StatusNotFound, apiError{Error: "unknown stream"})
		return
	}
	now := a.now()
	if ok, wait, full := a.addrs.allow(clientAddr(r), now.UnixNano()); !ok {
		if full {
			a.refuse(numKinds, ReasonCapacity, 1)
			retryAfter(w, http.StatusServiceUnavailable, wait, "too many clients are sending signals")
			return
		}
		a.refuse(numKinds, ReasonRateAddress, 1)
		retryAfter(w, http.StatusTooManyRequests, wait, "signal rate limit exceeded for this client address")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(a.MaxBodyBytes)))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			a.refuse(numKinds, ReasonTooLarge, 1)
			writeJSON(w, http.StatusRequestEntityTooLarge, apiError{Error: "signal body too large", Limit: a.MaxBodyBytes})
			return
		}
		a.refuse(numKinds, ReasonBadRequest, 1)
		writeJSON(w, http.StatusBadRequest, apiError{Error: "could not read the body"})
		return
	}
	req, err := DecodeRequest(body, a.MaxBatch)
	if err != nil {
		var fe *FieldError
		errors.As(err, &fe)
		a.refuse(numKinds, ReasonBadRequest, 1)
		writeJSON(w, http.StatusBadRequest, apiError{Error: "invalid signal", Field: fe.Field, Message: fe.Message})
		return
	}
	// Polls are looked up before the stream's lock is taken: the cue
	// service may read a tally (and so take that lock) while it holds its
	// own.
	open := a.openPolls(name, req)
	for {
		s := a.stream(name, true)
		if s == nil {
			a.refuseAll(req, ReasonCapacity)
			retryAfter(w, http.StatusServiceUnavailable, time.Second, "too many streams have signals")
			return
		}
		s.mu.Lock()
		if s.dead {
			s.mu.Unlock()
			continue
		}
		refused, reason, wait, ok := s.apply(req, now, open)
		s.mu.Unlock()
		if !ok && reason == ReasonCapacity {
			// Forget idle viewers for the next newcomer.
			a.sweep(now.UnixNano(), false)
		}
		a.answer(w, req, refused, reason, wait, ok)
		return
	}
}

// preflightSignals answers a CORS preflight of a signals POST with a JSON
// body (Fetch standard, CORS-preflight request).
func (a *Audience) preflightSignals(w http.ResponseWriter, r *http.Request) {
	a.Start()
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", a.CORSOrigin)
	h.Set("Access-Control-Allow-Methods", "POST, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "Content-Type")
	h.Set("Access-Control-Max-Age", "86400")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

// openPolls asks Polls about each poll the request votes in.
func (a *Audience) openPolls(stream string, req *Request) func(id string) (int, bool) {
	var open map[string]int
	for _, s := range req.Signals {
		if s.Kind != KindVote {
			continue
		}
		if open == nil {
			open = map[string]int{}
		}
		if _, done := open[s.Poll]; done {
			continue
		}
		n, ok := 0, false
		if a.Polls != nil {
			n, ok = a.Polls.OpenPoll(stream, s.Poll)
		}
		if !ok {
			n = -1
		}
		open[s.Poll] = n
	}
	return func(id string) (int, bool) {
		n, ok := open[id]
		return n, ok && n > 0
	}
}

func (a *Audience) answer(w http.ResponseWriter, req *Request, refused []outcome, reason Reason, wait time.Duration, ok bool) {
	if !ok {
		a.refuseAll(req, reason)
		if reason == ReasonCapacity {
			retryAfter(w, http.StatusServiceUnavailable, wait, "too many viewers are tracked")
			return
		}
		retryAfter(w, http.StatusTooManyRequests, wait, "signal rate limit exceeded for this viewer")
		return
	}
	out := signalResponse{Accepted: len(req.Signals) - len(refused)}
	skip := map[int]bool{}
	for _, o := range refused {
		skip[o.index] = true
		a.refuse(req.Signals[o.index].Kind, o.reason, 1)
		out.Refused = append(out.Refused, refusedJSON{Index: o.index, Reason: o.reason.String()})
	}
	for i, s := range req.Signals {
		if !skip[i] {
			a.accepted[s.Kind].Add(1)
		}
	}
	// A single vote that was not counted is a conflict, with its field;
	// a batch reports each refusal in its 202.
	if len(req.Signals) == 1 && len(refused) == 1 {
		msg := "the poll is not open"
		if refused[0].reason == ReasonDuplicateVote {
			msg = "this viewer already voted in this poll"
		} else if refused[0].reason == ReasonCapacity {
			msg = "too many voters in this poll"
		}
		writeJSON(w, http.StatusConflict, apiError{Error: msg, Field: "poll"})
		return
	}
	writeJSON(w, http.StatusAccepted, out)
}

// PulseJSON is the body of pulse.json.
type PulseJSON struct {
	Stream string `json:"stream"`
	// Viewers is how many viewers sent a heartbeat in the last two
	// heartbeat intervals.
	Viewers int64 `json:"viewers"`
	// Reactions is the hearts of the last ReactionWindowS seconds;
	// ReactionsTotal counts them since the stream's first signal, so a
	// page can tell how many are new.
	Reactions       int64 `json:"reactions"`
	ReactionsTotal  int64 `json:"reactions_total"`
	ReactionWindowS int   `json:"reaction_window_s"`
	// HeartbeatS is the heartbeat interval pages must use.
	HeartbeatS int `json:"heartbeat_s"`
	// MaxBatch is the most signals a page may post at once.
	MaxBatch int `json:"max_batch"`
	// Polls are the tallies of the open polls that have votes.
	Polls []PollJSON `json:"polls"`
}

// PollJSON is the tally of one poll.
type PollJSON struct {
	ID     string  `json:"id"`
	Open   bool    `json:"open"`
	Counts []int64 `json:"counts"`
	Votes  int64   `json:"votes"`
}

// pulseCache holds a stream's last pulse, so that a crowd of pollers
// without a CDN costs one build per period, not one per request.
type pulseCache struct {
	body  []byte
	etag  string
	built int64 // Unix ns
}

// pulseRebuild is how often a stream's pulse may be built: a quarter of
// its max-age, so what an edge fetches is never older than that.
func (a *Audience) pulseRebuild() int64 { return int64(a.PulseMaxAge / 4) }

func (a *Audience) servePulse(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", a.CORSOrigin)
	name := r.PathValue("name")
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodOptions:
		h.Set("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
		h.Set("Access-Control-Max-Age", "86400")
		w.WriteHeader(http.StatusNoContent)
		return
	default:
		h.Set("Allow", "GET, HEAD, OPTIONS")
		writeJSON(w, http.StatusMethodNotAllowed, apiError{Error: "method not allowed"})
		return
	}
	if !a.playToken(r, name) {
		h.Set("Cache-Control", "public, max-age=1")
		writeJSON(w, http.StatusForbidden, apiError{Error: "a valid play token of this stream is required (?token=)"})
		return
	}
	if !a.Streams.HasStream(name) {
		h.Set("Cache-Control", "public, max-age=1")
		writeJSON(w, http.StatusNotFound, apiError{Error: "unknown stream"})
		return
	}
	body, etag := a.pulse(name)
	age := strconv.Itoa(max(1, int(a.PulseMaxAge/time.Second)))
	h.Set("Cache-Control", "public, max-age="+age+", s-maxage="+age)
	h.Set("ETag", etag)
	h.Set("Content-Type", "application/json")
	if inm := r.Header.Get("If-None-Match"); inm != "" && inm == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(body)
}

// pulse returns a stream's pulse and its ETag, built at most every
// pulseRebuild.
func (a *Audience) pulse(name string) ([]byte, string) {
	now := a.now()
	s := a.stream(name, false)
	if s == nil {
		// A live stream no viewer has signalled yet.
		return a.encodePulse(PulseJSON{Stream: name, HeartbeatS: a.heartbeatS(), MaxBatch: a.MaxBatch, ReactionWindowS: a.reactionWindowS(), Polls: []PollJSON{}})
	}
	s.mu.Lock()
	if c := s.pulse; c.body != nil && now.UnixNano()-c.built < a.pulseRebuild() {
		s.mu.Unlock()
		return c.body, c.etag
	}
	s.mu.Unlock()
	p := a.snapshot(name, s, now, true)
	body, etag := a.encodePulse(PulseJSON{
		Stream: name, Viewers: p.viewers, Reactions: p.reactionsWindow, ReactionsTotal: p.reactionsTotal,
		ReactionWindowS: a.reactionWindowS(), HeartbeatS: a.heartbeatS(), MaxBatch: a.MaxBatch, Polls: p.polls,
	})
	s.mu.Lock()
	s.pulse = pulseCache{body: body, etag: etag, built: now.UnixNano()}
	s.mu.Unlock()
	return body, etag
}

func (a *Audience) heartbeatS() int {
	return max(1, int(a.HeartbeatInterval/time.Second))
}

func (a *Audience) reactionWindowS() int {
	return max(1, int(a.ReactionWindow/time.Second))
}

func (a *Audience) encodePulse(p PulseJSON) ([]byte, string) {
	b, _ := json.Marshal(p) // plain structs of numbers and valid strings
	h := fnv.New64a()
	_, _ = h.Write(b)
	return b, `"` + strconv.FormatUint(h.Sum64(), 36) + `"`
}

// snapshot is one stream's counters at now.
type snapshot struct {
	viewers, reactionsWindow, reactionsMinute, reactionsTotal int64
	polls                                                     []PollJSON
	products                                                  []ProductJSON
}

// snapshot reads a stream's counters. The polls' open state is asked of
// Polls without the stream's lock (see serveSignals); with openOnly only
// the open ones are kept.
func (a *Audience) snapshot(name string, s *stream, now time.Time, openOnly bool) snapshot {
	var out snapshot
	sec := now.Unix()
	s.mu.Lock()
	out.viewers = s.viewersNow(now)
	out.reactionsWindow = s.reactions.sum(sec, a.reactionWindowS())
	out.reactionsMinute = s.reactions.sum(sec, minuteSeconds)
	out.reactionsTotal = s.reactionsTotal
	ids := append([]string(nil), s.pollOrder...)
	if !openOnly {
		out.products = make([]ProductJSON, 0, len(s.products))
		for id, p := range s.products {
			pj := ProductJSON{Cue: id, SKU: p.sku, Impressions: p.impressions, Clicks: p.clicks}
			if p.impressions > 0 {
				pj.CTR = float64(p.clicks) / float64(p.impressions)
			}
			out.products = append(out.products, pj)
		}
	}
	s.mu.Unlock()
	slices.SortFunc(out.products, func(x, y ProductJSON) int { return strings.Compare(x.Cue, y.Cue) })
	open := make([]bool, len(ids))
	for i, id := range ids {
		if a.Polls != nil {
			_, open[i] = a.Polls.OpenPoll(name, id)
		}
	}
	out.polls = []PollJSON{}
	s.mu.Lock()
	for i, id := range ids {
		p := s.polls[id]
		if p == nil || (openOnly && !open[i]) {
			continue
		}
		pj := PollJSON{ID: id, Open: open[i], Counts: append([]int64(nil), p.counts...)}
		for _, c := range p.counts {
			pj.Votes += c
		}
		out.polls = append(out.polls, pj)
	}
	s.mu.Unlock()
	return out
}

// StudioJSON is the studio's view of a stream's audience.
type StudioJSON struct {
	Stream             string        `json:"stream"`
	Viewers            int64         `json:"viewers"`
	ReactionsPerMinute int64         `json:"reactions_per_minute"`
	ReactionsTotal     int64         `json:"reactions_total"`
	Polls              []PollJSON    `json:"polls"`
	Products           []ProductJSON `json:"products"`
}

// ProductJSON is the funnel of one product card.
type ProductJSON struct {
	Cue         string  `json:"cue"`
	SKU         string  `json:"sku,omitempty"`
	Impressions int64   `json:"impressions"`
	Clicks      int64   `json:"clicks"`
	CTR         float64 `json:"ctr"`
}

// serveStudio answers the studio's view, under the admin rule every
// studio and admin read applies (package adminauth): the funnel is the
// shop's business, not the viewers'.
func (a *Audience) serveStudio(w http.ResponseWriter, r *http.Request) {
	a.Start()
	w.Header().Set("Cache-Control", "no-store")
	if ref := (adminauth.Rule{Token: a.AdminToken}).Check(r); ref != nil {
		if ref.Challenge != "" {
			w.Header().Set("WWW-Authenticate", ref.Challenge)
		}
		writeJSON(w, ref.Status, apiError{Error: ref.Error()})
		return
	}
	name := r.PathValue("name")
	s := a.stream(name, false)
	if s == nil && !a.Streams.HasStream(name) {
		writeJSON(w, http.StatusNotFound, apiError{Error: "unknown stream"})
		return
	}
	out := StudioJSON{Stream: name, Polls: []PollJSON{}, Products: []ProductJSON{}}
	if s != nil {
		p := a.snapshot(name, s, a.now(), false)
		out.Viewers, out.ReactionsPerMinute, out.ReactionsTotal = p.viewers, p.reactionsMinute, p.reactionsTotal
		out.Polls, out.Products = p.polls, p.products
	}
	writeJSON(w, http.StatusOK, out)
}
