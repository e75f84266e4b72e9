// Package telemetry exposes shopcast to Prometheus and to load balancers:
// the metrics of every stage (ingest, packager, origin, cues) in one
// registry of its own, served at GET /metrics, and the readiness answered
// at GET /readyz.
//
// Values are pulled at scrape time where a stage already counts them (the
// packager's Stats, the cue store) and pushed through small observer hooks
// where only the stage sees the event (origin requests, cue POSTs). Labels
// are bounded: the stream name is the only open-ended one, and only
// MaxStreamLabels live streams get their own value; the rest share
// OtherStream. Viewers are counted, never labelled.
package telemetry

import (
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/shopcast/shopcast/cues"
	"github.com/shopcast/shopcast/origin"
	"github.com/shopcast/shopcast/packager"
)

// OtherStream is the stream label value shared by the streams beyond
// MaxStreamLabels (and by a stream that is really called "other").
const OtherStream = "other"

// StatsSource gives the packager's counters; packager.Manager implements it.
type StatsSource interface {
	Stats() packager.Stats
}

// CueLister lists a stream's open cues; cues.Store implements it.
type CueLister interface {
	OpenCues(stream string) ([]cues.Record, error)
}

// Metrics holds shopcast's metrics. Set its fields, then call Start (or let
// the first use do it). It implements origin.Observer and
// cues.CueObserver.
type Metrics struct {
	// Packager is read at every scrape for the per-stream ingest, part,
	// segment, publisher, lag and blocked-request metrics. Required.
	Packager StatsSource
	// Cues, when set, is read at every scrape for shopcast_cues_active.
	// It defaults to nil (the gauge is not exported).
	Cues CueLister
	// Recorder, when set, is read at every scrape for the shopcast_record*
	// metrics. It defaults to nil (not exported).
	Recorder RecorderStats
	// Ladder, when set, is read at every scrape for the shopcast_ladder*
	// and shopcast_poster* metrics. It defaults to nil (not exported).
	Ladder LadderStats
	// MaxStreamLabels is how many live streams get their own stream label;
	// the others are summed under OtherStream. It defaults to 50.
	MaxStreamLabels int
	// ViewerWindow is how recently a session must have loaded a playlist to
	// count as an active viewer. It defaults to 30s.
	ViewerWindow time.Duration
	// MaxViewerSessions caps the sessions tracked for the viewer count
	// (about 64 bytes each); sessions beyond it are counted in
	// shopcast_viewer_sessions_dropped_total instead. It defaults to 200000.
	MaxViewerSessions int
	// Logger receives scrape errors (cue store reads). It defaults to
	// discarding them.
	Logger *slog.Logger

	once sync.Once
	reg  *prometheus.Registry
	now  func() time.Time // tests replace it

	playlistRequests *prometheus.CounterVec
	mediaRequests    *prometheus.CounterVec
	cuesRejected     *prometheus.CounterVec

	streams *streamCollector
	viewers *viewerSet
}

// Defaults of the Metrics fields.
const (
	defaultMaxStreamLabels   = 50
	defaultViewerWindow      = 30 * time.Second
	defaultMaxViewerSessions = 200000
)

// Start builds the registry. It is called by the first use if the wiring
// did not.
func (m *Metrics) Start() { m.once.Do(m.init) }

func (m *Metrics) init() {
	if m.MaxStreamLabels <= 0 {
		m.MaxStreamLabels = defaultMaxStreamLabels
	}
	if m.ViewerWindow <= 0 {
		m.ViewerWindow = defaultViewerWindow
	}
	if m.MaxViewerSessions <= 0 {
		m.MaxViewerSessions = defaultMaxViewerSessions
	}
	if m.Logger == nil {
		m.Logger = slog.New(slog.DiscardHandler)
	}
	if m.now == nil {
		m.now = time.Now
	}
	m.viewers = newViewerSet(m.ViewerWindow, m.MaxViewerSessions)
	m.streams = newStreamCollector(m)
	m.playlistRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shopcast_playlist_requests_total",
		Help: "Playlist requests answered, by kind (multivariant, plain, blocking, delta, blocking_delta) and HTTP status (499: the client left first).",
	}, []string{"kind", "status"})
	m.mediaRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shopcast_media_requests_total",
		Help: "Init, segment and part requests answered, by kind and HTTP status (499: the client left first; other: not a stream file).",
	}, []string{"kind", "status"})
	m.cuesRejected = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shopcast_cues_rejected_total",
		Help: "Cue POSTs refused, by reason.",
	}, []string{"reason"})

	m.reg = prometheus.NewRegistry()
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.playlistRequests, m.mediaRequests, m.cuesRejected, m.streams,
	)
	if m.Recorder != nil {
		m.reg.MustRegister(newRecorderCollector(m.Recorder))
	}
	if m.Ladder != nil {
		m.reg.MustRegister(newLadderCollector(m.Ladder))
	}
}

// Registry returns the registry, for collectors of other components.
func (m *Metrics) Registry() *prometheus.Registry {
	m.Start()
	return m.reg
}

// Handler serves the metrics in the Prometheus exposition formats, for
// GET /metrics.
func (m *Metrics) Handler() http.Handler {
	m.Start()
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(m.Logger.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError,
		Registry:      m.reg,
	})
}

// ObserveLive implements origin.Observer: it counts the request, and a
// playlist answered 2xx marks its session (client IP and User-Agent) as
// viewing the stream.
func (m *Metrics) ObserveLive(r *http.Request, lr origin.LiveRequest) {
	m.Start()
	status := "499"
	if lr.Status != 0 {
		status = strconv.Itoa(lr.Status)
	}
	if !lr.Kind.IsPlaylist() {
		m.mediaRequests.WithLabelValues(string(lr.Kind), status).Inc()
		return
	}
	m.playlistRequests.WithLabelValues(string(lr.Kind), status).Inc()
	if lr.Status >= 200 && lr.Status < 300 {
		m.viewers.see(lr.Stream, clientIP(r), r.UserAgent(), m.now())
	}
}

// CuePosted implements cues.CueObserver.
func (m *Metrics) CuePosted(stream string) {
	m.Start()
	m.streams.cuePosted(stream)
}

// CueRejected implements cues.CueObserver.
func (m *Metrics) CueRejected(reason string) {
	m.Start()
	m.cuesRejected.WithLabelValues(reason).Inc()
}

// clientIP is the host of the request's remote address. Behind a CDN it is
// an edge's address: viewers are then counted per edge and User-Agent.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
