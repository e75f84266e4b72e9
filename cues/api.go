package cues

import (
	"errors"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/shopcast/shopcast/internal/adminauth"
	"github.com/shopcast/shopcast/packager"
)

// API is the cue API, JSON over HTTP:
//
//	POST   /api/v1/streams/{name}/cues       201 the placed cue
//	GET    /api/v1/streams/{name}/cues       200 {"cues":[...]} scheduled and active
//	GET    /api/v1/streams/{name}/cues/{id}  200 the cue
//	DELETE /api/v1/streams/{name}/cues/{id}  200 the ended or cancelled cue
//
// Errors are JSON: {"error": "..."} (400 adds "field" and "message").
// It is the HTTP layer over a Service, which places and ends the cues.
type API struct {
	// Service places and ends the cues; it must be set.
	Service *Service
	// Token is the bearer token the API requires (Authorization: Bearer
	// TOKEN). Empty means no token: the API then answers only loopback
	// clients that are not behind a proxy. It defaults to empty.
	Token string
	// MaxCueBytes is the largest request body. It defaults to 8192.
	MaxCueBytes int
	// RatePerSecond is how many cues a second one stream may post or
	// delete, as a token bucket whose burst is the rate (at least 1). It
	// defaults to 50.
	RatePerSecond float64
	// Logger receives the API's logs. It defaults to slog.Default().
	Logger *slog.Logger
	// Observer, when set, is told how each cue POST ended, for metrics.
	// It defaults to nil.
	Observer CueObserver

	once sync.Once
	mux  *http.ServeMux
	lim  *limiter
	now  func() time.Time // tests replace it
}

// Start applies the defaults and logs how the API is protected. ServeHTTP
// calls it if the wiring did not.
func (a *API) Start() {
	a.once.Do(a.init)
}

func (a *API) init() {
	if a.MaxCueBytes <= 0 {
		a.MaxCueBytes = 8192
	}
	if a.RatePerSecond <= 0 {
		a.RatePerSecond = 50
	}
	if a.Logger == nil {
		a.Logger = slog.Default()
	}
	a.Service.Start()
	if a.now == nil {
		a.now = a.Service.now
	}
	a.lim = newLimiter(a.RatePerSecond, a.RatePerSecond)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/streams/{name}/cues", a.post)
	mux.HandleFunc("GET /api/v1/streams/{name}/cues", a.list)
	mux.HandleFunc("GET /api/v1/streams/{name}/cues/{id}", a.get)
	mux.HandleFunc("DELETE /api/v1/streams/{name}/cues/{id}", a.delete)
	a.mux = mux
	if a.Token == "" {
		a.Logger.Warn("cue API has no token: it answers loopback clients only; set a token to post cues from elsewhere")
	} else {
		a.Logger.Info("cue API requires a bearer token")
	}
}

// ServeHTTP serves the cue API.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.Start()
	w = a.observePost(w, r)
	w.Header().Set("Cache-Control", "no-store")
	if !a.authorize(w, r) {
		return
	}
	a.mux.ServeHTTP(w, r)
}

// authorize applies the rule every admin endpoint shares (package
// adminauth): the bearer token when one is configured, else only direct
// requests from this machine.
func (a *API) authorize(w http.ResponseWriter, r *http.Request) bool {
	ref := adminauth.Rule{Token: a.Token}.Check(r)
	if ref == nil {
		return true
	}
	if ref.Challenge != "" {
		w.Header().Set("WWW-Authenticate", ref.Challenge)
	}
	msg := ref.Error()
	if errors.Is(ref, adminauth.ErrNotLocal) {
		msg = "the cue API has no token configured and answers loopback clients only: " + msg
	}
	writeJSON(w, ref.Status, errorBody(msg))
	return false
}

// CueResponse is how the API shows a cue.
type CueResponse struct {
	Cue *Cue `json:"cue"`
	// State is scheduled, active, ended or cancelled.
	State State `json:"state"`
	// MediaTimeMs is the resolved media time of the start, in ms.
	MediaTimeMs int64 `json:"media_time_ms"`
	// ProgramDateTime is the EXT-X-PROGRAM-DATE-TIME of the start.
	ProgramDateTime string `json:"program_date_time"`
	// EndProgramDateTime is the end once known.
	EndProgramDateTime string `json:"end_program_date_time,omitempty"`
	// EndMediaTimeMs is where the END event of a deleted cue landed.
	EndMediaTimeMs *int64 `json:"end_media_time_ms,omitempty"`
	CreatedAt      string `json:"created_at"`
}

const apiTime = "2006-01-02T15:04:05.000Z07:00"

func (a *API) response(r *Record) *CueResponse {
	c := r.Cue
	out := &CueResponse{
		Cue:         &c,
		State:       r.StateAt(a.now()),
		MediaTimeMs: r.Media.Milliseconds(),
		CreatedAt:   r.Created.UTC().Format(apiTime),
	}
	if !r.Start.IsZero() {
		out.ProgramDateTime = r.Start.UTC().Format(apiTime)
	}
	if !r.End.IsZero() {
		out.EndProgramDateTime = r.End.UTC().Format(apiTime)
	}
	if r.State == StateEnded && r.EndMedia > 0 {
		ms := r.EndMedia.Milliseconds()
		out.EndMediaTimeMs = &ms
	}
	return out
}

type apiError struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
	Limit int    `json:"limit,omitempty"`
}

func errorBody(msg string) apiError { return apiError{Error: msg} }

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := compactJSON(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func (a *API) internal(w http.ResponseWriter, r *http.Request, stream, msg string, err error) {
	a.Logger.Error(msg, "stream", stream, "remote", r.RemoteAddr, "err", err)
	if errors.Is(err, ErrUnavailable) {
		// A cluster without a quorum: nothing was acknowledged, and a retry
		// of the same cue (same id) is safe once it is back.
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, errorBody(msg+": "+ErrUnavailable.Error()+"; nothing was stored, retry later"))
		return
	}
	writeJSON(w, http.StatusInternalServerError, errorBody(msg))
}

// allow applies the stream's rate limit, answering 429 when it is spent.
func (a *API) allow(w http.ResponseWriter, stream string) bool {
	ok, wait := a.lim.allow(stream, a.now())
	if ok {
		return true
	}
	// RFC 9110 10.2.3: Retry-After in whole seconds.
	secs := max(1, int(math.Ceil(wait.Seconds())))
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	writeJSON(w, http.StatusTooManyRequests, errorBody("cue rate limit exceeded for this stream"))
	return false
}

// post places a cue. A retry of a cue the stream has (same id, same cue)
// answers what the first POST did, 201 with the cue as it is now, even
// while the stream is down: a producer that lost the answer cannot tell
// whether it was placed, and the IETF Idempotency-Key draft
// (draft-ietf-httpapi-idempotency-key-header) has a server answer a retry
// with the first request's result. So a client that checks for 201 and
// retries until it gets one works unchanged.
func (a *API) post(w http.ResponseWriter, r *http.Request) {
	stream := r.PathValue("name")
	// A stream that is down but has cues on record goes on, for a retry
	// of one of them; Service.Place answers a new cue with a 404.
	if !a.Service.Timeline.HasStream(stream) && !a.Service.Store.Known(stream) {
		writeJSON(w, http.StatusNotFound, errorBody("unknown stream"))
		return
	}
	if !a.allow(w, stream) {
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(a.MaxCueBytes)))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeJSON(w, http.StatusRequestEntityTooLarge, apiError{Error: "cue too large", Limit: a.MaxCueBytes})
			return
		}
		writeJSON(w, http.StatusBadRequest, errorBody("could not read the body"))
		return
	}
	c, err := DecodeCue(body)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, err)
		return
	}
	rec, replayed, err := a.Service.place(stream, c)
	var fe *FieldError
	switch {
	case errors.As(err, &fe): // a `replaces` that names no active cue
		writeJSON(w, http.StatusBadRequest, fe)
		return
	case errors.Is(err, ErrIDUsed):
		writeJSON(w, http.StatusConflict, apiError{Error: "cue id already used in this stream", Field: "id"})
		return
	case errors.Is(err, packager.ErrNotFound):
		writeJSON(w, http.StatusNotFound, errorBody("unknown stream"))
		return
	case err != nil:
		a.internal(w, r, stream, "cue could not be placed", err)
		return
	}
	msg := "cue placed"
	if replayed {
		msg = "cue placed before: retry answered with it"
	}
	a.Logger.Info(msg, "stream", stream, "remote", r.RemoteAddr, "cue", rec.Cue.ID,
		"media_ms", rec.Media.Milliseconds())
	w.Header().Set("Location", "/api/v1/streams/"+url.PathEscape(stream)+"/cues/"+rec.Cue.ID)
	status := http.StatusCreated
	if rec.State == StateQueued {
		status = http.StatusAccepted // in a cluster: stored, the stream's owner places it
	}
	writeJSON(w, status, a.response(&rec))
}

// knownStream is a stream that is live or has cues on record.
func (a *API) knownStream(w http.ResponseWriter, stream string) bool {
	if a.Service.Timeline.HasStream(stream) || a.Service.Store.Known(stream) {
		return true
	}
	writeJSON(w, http.StatusNotFound, errorBody("unknown stream"))
	return false
}

// record returns the visible record of the request's cue, or answers 404.
func (a *API) record(w http.ResponseWriter, r *http.Request) (string, *Record, bool) {
	stream, id := r.PathValue("name"), r.PathValue("id")
	if !a.knownStream(w, stream) {
		return stream, nil, false
	}
	rec, err := a.Service.Store.Get(stream, id)
	if errors.Is(err, ErrCueNotFound) || (err == nil && (rec.State == StateFailed || rec.State == StatePending)) {
		writeJSON(w, http.StatusNotFound, errorBody("unknown cue"))
		return stream, nil, false
	}
	if err != nil {
		a.internal(w, r, stream, "cue store failed", err)
		return stream, nil, false
	}
	return stream, &rec, true
}

func (a *API) list(w http.ResponseWriter, r *http.Request) {
	stream := r.PathValue("name")
	if !a.knownStream(w, stream) {
		return
	}
	recs, err := a.Service.Store.OpenCues(stream)
	if err != nil {
		a.internal(w, r, stream, "cue store failed", err)
		return
	}
	out := struct {
		Cues []*CueResponse `json:"cues"`
	}{Cues: []*CueResponse{}}
	now := a.now()
	for i := range recs {
		if st := recs[i].StateAt(now); st == StateScheduled || st == StateActive || st == StateQueued {
			out.Cues = append(out.Cues, a.response(&recs[i]))
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) get(w http.ResponseWriter, r *http.Request) {
	if _, rec, ok := a.record(w, r); ok {
		writeJSON(w, http.StatusOK, a.response(rec))
	}
}

// delete ends an active cue now or cancels a scheduled one. Deleting a cue
// that is already over answers 200 with it, so a retried DELETE is safe.
func (a *API) delete(w http.ResponseWriter, r *http.Request) {
	stream, rec, ok := a.record(w, r)
	if !ok {
		return
	}
	id := rec.Cue.ID
	st := rec.StateAt(a.now())
	if st == StateEnded || st == StateCancelled {
		writeJSON(w, http.StatusOK, a.response(rec))
		return
	}
	if !a.allow(w, stream) {
		return
	}
	out, err := a.Service.End(stream, rec)
	if err != nil {
		a.internal(w, r, stream, "cue could not be ended", err)
		return
	}
	a.Logger.Info("cue finished", "stream", stream, "remote", r.RemoteAddr, "cue", id, "state", out.State)
	writeJSON(w, http.StatusOK, a.response(&out))
}
