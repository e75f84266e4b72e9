// Package server wires shopcast's stages into one server: the cue store,
// the packager, the RTMP and RTSP ingest (and pulls from RTSP cameras), and
// the HTTP origin with the cue API, the pages, metrics and readiness. The
// shopcast command, the end-to-end tests and the benchmarks all start this
// one wiring, so what they run is what ships; several servers can run in
// one process (nothing is global).
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/shopcast/shopcast/audience"
	"github.com/shopcast/shopcast/cluster"
	"github.com/shopcast/shopcast/cues"
	"github.com/shopcast/shopcast/ingest"
	"github.com/shopcast/shopcast/internal/adminauth"
	"github.com/shopcast/shopcast/internal/discseq"
	"github.com/shopcast/shopcast/internal/fdlimit"
	"github.com/shopcast/shopcast/ladder"
	"github.com/shopcast/shopcast/origin"
	"github.com/shopcast/shopcast/packager"
	"github.com/shopcast/shopcast/recorder"
	"github.com/shopcast/shopcast/steering"
	"github.com/shopcast/shopcast/telemetry"
	"github.com/shopcast/shopcast/web"
)

// ErrStarted is returned by Start when the server was already started.
var ErrStarted = errors.New("server already started")

// Server is one shopcast server. New builds it, Start binds its listeners
// (after which Addrs holds the bound addresses), and Run serves until its
// context ends, then shuts down gracefully.
type Server struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	started bool
	addrs   Addrs
	// closers undo Start in reverse order: origin, pulls, ingest, packager,
	// store.
	closers []func()
	org     *origin.Server
	ready   *telemetry.Ready
	manager *packager.Manager
	aud     *audience.Audience
	ladder  *ladder.Ladder
	// node is this server's cluster member and leases its stream
	// registry; nil on a single node.
	node   *cluster.Node
	leases *cluster.Registry
	proxy  *cluster.Proxy
}

// startRegistry makes the cluster's stream registry: it closes after the
// ingest (whose publishers release their leases) and before the node.
func (s *Server) startRegistry(discs *discseq.Store) {
	s.leases = cluster.NewRegistry(s.node, cluster.RegistryConfig{
		URL:             s.cfg.ClusterAdvertise,
		TTL:             s.cfg.ClusterLeaseTTL,
		Renew:           s.cfg.ClusterLeaseRenew,
		TakeoverSilence: s.cfg.PublishTakeoverSilence,
		Moving:          s.cfg.GracePeriod,
		RequestTimeout:  s.cfg.ClusterRequestTimeout,
		ClaimWait:       s.cfg.ClusterClaimWait,
		Provisional:     s.cfg.ClusterProvisional,
		QueryTimeout:    s.cfg.ClusterQueryTimeout,
		// Set before the first publisher can arrive.
		Active: func(name string) bool {
			_, ok := s.manager.Stream(name)
			return ok
		},
		FirstDiscontinuity: discs.Next,
		Load: func() cluster.Load {
			return cluster.Load{Streams: len(s.manager.StreamNames()), Blocked: s.manager.Blocked()}
		},
	})
	s.push(s.leases.Close)
}

// firstDiscontinuity is a new stream's first discontinuity sequence
// number: in a cluster the one its lease took (larger than every earlier
// owner's), else the next of the local store.
func (s *Server) firstDiscontinuity(discs *discseq.Store, stream string) int64 {
	if s.leases != nil {
		if _, d, ok := s.leases.Held(stream); ok {
			return d
		}
	}
	return discs.Next(stream)
}

// advertiseURL is the URL the other nodes proxy to: cluster_advertise, or
// the bound HTTP address with the host name for a wildcard address.
func (s *Server) advertiseURL() string {
	if s.cfg.ClusterAdvertise != "" {
		return strings.TrimRight(s.cfg.ClusterAdvertise, "/")
	}
	scheme := "http"
	if s.cfg.TLSCert != "" {
		scheme = "https"
	}
	a, ok := s.addrs.HTTP.(*net.TCPAddr)
	if !ok {
		return scheme + "://" + s.addrs.HTTP.String()
	}
	host := a.IP.String()
	if a.IP == nil || a.IP.IsUnspecified() {
		if h, err := os.Hostname(); err == nil {
			host = h
		}
	}
	return scheme + "://" + net.JoinHostPort(host, strconv.Itoa(a.Port))
}

// clusterStats are the cluster's counters for /metrics.
func (s *Server) clusterStats() telemetry.ClusterStats {
	rs, ps := s.leases.Stats(), s.proxy.Stats()
	return telemetry.ClusterStats{
		Healthy: s.node.Healthy(), StreamsOwned: s.leases.OwnedCount(),
		Claims: rs.Claims, Refusals: rs.Refusals, Renewals: rs.Renewals, Losses: rs.Losses,
		Provisional: rs.Provisional, Kept: rs.Kept,
		Proxied: ps.Proxied, ProxyUnreachable: ps.Unreachable, ProxyMoving: ps.Moving,
	}
}

// Registry returns the cluster's stream registry, nil on a single node.
func (s *Server) Registry() *cluster.Registry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.leases
}

// readyCluster is the /readyz condition of cluster mode: JetStream
// answers and the stream registry is read, so this node can tell which
// node owns a stream.
const readyCluster = "cluster"

// watchClusterReady turns readyCluster on once JetStream answers.
func (s *Server) watchClusterReady() {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		select {
		case <-s.leases.Ready():
			s.ready.Set(readyCluster, true)
		case <-stop:
		}
	}()
	s.push(func() { close(stop); <-done; s.ready.Set(readyCluster, false) })
}

// Cluster returns this server's cluster node, nil on a single node or
// before Start.
func (s *Server) Cluster() *cluster.Node {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.node
}

// leaseOwners tells the cue service which streams this node owns: those
// whose lease it holds in the cluster's stream registry.
type leaseOwners struct{ r *cluster.Registry }

func (o leaseOwners) Owns(stream string) bool {
	_, _, ok := o.r.Held(stream)
	return ok
}

// Addrs are the bound listen addresses, so that callers that listen on
// port 0 learn the port. Metrics is nil when metrics share the HTTP port.
type Addrs struct {
	HTTP, RTMP, RTSP, Metrics net.Addr
}

// New checks cfg and returns a server that is not yet listening. log
// receives every component's lines.
func New(cfg Config, log *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	return &Server{cfg: cfg, log: log}, nil
}

// blockingWait is how long an LL-HLS blocking request may be held.
// RFC 8216bis 6.2.5.2: a blocking request waits up to 3 target durations;
// the write timeout and the shutdown wait must outlast it.
func (s *Server) blockingWait() time.Duration { return 3*s.cfg.TargetDuration + time.Second }

// Start opens the cue store and binds every listener. When one fails, what
// was already started is closed again and the error returned. On success
// the caller must call Run, which is what closes the server.
func (s *Server) Start() (err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return ErrStarted
	}
	s.started = true
	defer func() {
		if err != nil {
			s.closeLocked()
		}
	}()
	cfg, log := s.cfg, s.log
	s.checkFileLimit()
	readyConds := []string{telemetry.ReadyListeners, telemetry.ReadyCueStore}

	// The cluster block: the node joins NATS first and leaves last, so
	// that what the others replicate drains before its connection goes.
	if cfg.ClusterNode != "" {
		cc := cfg.clusterConfig()
		cc.Logger = log
		s.node = cluster.New(cc)
		if err := s.node.Start(context.Background()); err != nil {
			return err
		}
		s.push(s.node.Close)
		readyConds = append(readyConds, readyCluster)
	}

	// Started in pipeline order, closed in reverse: the packager, the
	// ingest that feeds it, the origin that reads it.
	// The cue store opens first and closes last: nothing acknowledged to a
	// producer is lost while the rest shuts down.
	store := &cues.Store{Path: cfg.CueStore, CommitDelay: cfg.CueCommitDelay}
	if err := store.Open(); err != nil {
		return fmt.Errorf("cue store: %w", err)
	}
	s.push(func() { _ = store.Close() })
	// Next to the cue store, so that a restart on the same store keeps
	// every stream's discontinuity sequence growing.
	discs := &discseq.Store{Path: filepath.Join(filepath.Dir(cfg.CueStore), "shopcast-streams.json"), Logger: log}
	if err := discs.Open(); err != nil {
		return err
	}
	s.push(discs.Close)
	if s.node != nil {
		s.startRegistry(discs)
	}
	s.ready = telemetry.NewReady(readyConds...)

	// The cluster's cues (docs/cluster.md, "Cues"): in cluster mode the
	// cues live in the cluster's JetStream, which every node reads; the
	// node that owns a stream places its cues. The store opens once
	// JetStream answers (the cue store's readiness waits for it); until
	// then cue requests answer 503.
	var cueStore cues.CueStore = store
	var clusterCues *cues.ClusterStore
	if s.node != nil {
		clusterCues = &cues.ClusterStore{JetStream: s.node.JetStream(), Replicas: s.node.Replicas(),
			OpTimeout: cfg.CueClusterTimeout, Logger: log}
		cueStore = clusterCues
		s.push(func() { _ = clusterCues.Close() })
	} else {
		s.ready.Set(telemetry.ReadyCueStore, true)
	}

	if s.node != nil {
		s.watchClusterReady()
	}
	s.push(func() { s.ready.Set(telemetry.ReadyCueStore, false) }) // before the store closes
	// The cue service places cues and puts them back when a stream starts
	// again; it closes after the ingest and the packager that feed it data
	// messages, before the store.
	cueService := &cues.Service{Store: cueStore, PlaceWait: cfg.CueClusterPlaceWait, Logger: log}
	s.push(cueService.Close)
	cueAPI := &cues.API{
		Service:       cueService,
		Token:         cfg.CueToken,
		MaxCueBytes:   cfg.MaxCueBytes,
		RatePerSecond: float64(cfg.CueRate),
		Logger:        log,
	}
	if cfg.CueSchedule != "" {
		if err := cueService.LoadSchedule(cfg.CueSchedule); err != nil {
			return fmt.Errorf("cue schedule: %w", err)
		}
	}

	// Webhooks: the outbox opens before what feeds it (the recorder, the
	// packager, the cue service) and closes after them, once their last
	// news is stored; the cue store, which it reads, closes after it.
	wh, err := s.startWebhooks(store)
	if err != nil {
		return fmt.Errorf("webhooks: %w", err)
	}
	s.push(wh.Close)

	// The recorder writes what the packager hands over; it opens before the
	// packager (closing what a crash left open) and closes after it, once
	// the streams' ends closed their recordings.
	// Signed play URLs guard the live files and the recordings alike.
	var playAuth *origin.PlayAuth
	if cfg.PlaySecret != "" {
		playAuth = &origin.PlayAuth{Secret: []byte(cfg.PlaySecret), TTL: cfg.PlayTokenTTL}
	}
	var rec *recorder.Recorder
	var hooks packager.Hooks
	if cfg.Record {
		rcfg := recorder.Config{
			Dir:          cfg.RecordPath(),
			Retention:    cfg.RecordRetention,
			MinFreeBytes: cfg.RecordMinFreeBytes,
			CORSOrigin:   cfg.CORSOrigin,
			Logger:       log,
			FreeBytes:    cfg.recordFreeBytes,
			OnReady:      recordingReady(wh),
		}
		if playAuth != nil {
			rcfg.PlayAuth = playAuth
		}
		rec = recorder.New(rcfg)
		if err := rec.Start(); err != nil {
			return fmt.Errorf("record_dir: %w", err)
		}
		s.push(rec.Close)
		hooks = rec.Hooks()
	}

	// Webhooks hear of stream starts before the cue service places the
	// stream's cues, so stream.started comes first.
	hooks = chainHooks(hooks, wh.Hooks())
	onStreamStart := chainStart(wh.StreamStarted, cueService.StreamStarted)

	s.manager = packager.New(packager.Config{
		Hooks:         hooks,
		OnStreamStart: onStreamStart,
		OnData:        cueService.PublisherData,
		FirstNumbers: func(stream string) packager.Numbers {
			n := packager.WallClockNumbers()
			n.Discontinuity = s.firstDiscontinuity(discs, stream)
			return n
		},
		TargetDuration:      cfg.TargetDuration,
		PartTarget:          cfg.PartTarget,
		WindowSegments:      cfg.WindowSegments,
		GracePeriod:         cfg.GracePeriod,
		EndedLinger:         cfg.EndedLinger,
		MaxStreams:          cfg.MaxStreams,
		MaxBlockedRequests:  cfg.MaxBlockedRequests,
		MaxBlockedPerClient: cfg.MaxBlockedPerClient,
		MaxBlockedPerStream: cfg.MaxBlockedPerStream,
		MaxVariants:         cfg.MaxVariants,
		// Redundant ingest (docs/redundancy.md).
		AlignedTimeline: cfg.AlignedTimeline,
	}, log)
	s.push(s.manager.Close)
	cueService.Timeline = s.manager
	metrics := &telemetry.Metrics{Packager: s.manager, Cues: cueStore, MaxStreamLabels: cfg.MetricsMaxStreams, Logger: log}
	if rec != nil {
		metrics.Recorder = rec
	}

	// The ladder and the posters sit between the ingest and the packager:
	// every source passes through to the packager, and its rungs come back
	// from ffmpeg as more variants of the stream. It closes after the
	// ingest that feeds it and before the packager.
	s.ladder = ladder.New(ladder.Config{
		Rungs:             cfg.Ladder,
		FFmpegPath:        cfg.FFmpegPath,
		Preset:            cfg.LadderPreset,
		QueueFrames:       cfg.LadderQueueFrames,
		RestartMin:        cfg.LadderRestartMin,
		RestartMax:        cfg.LadderRestartMax,
		MaxStreams:        cfg.LadderMaxStreams,
		PosterInterval:    cfg.PosterInterval,
		PosterConcurrency: cfg.PosterConcurrency,
		Logger:            log,
	}, s.manager)
	s.push(s.ladder.Close)
	metrics.Ladder = s.ladder

	metrics.Start()
	metrics.Registry().MustRegister(telemetry.NewWebhookCollector(wh))
	cueAPI.Observer = metrics
	if clusterCues != nil {
		cm := cues.NewClusterMetrics()
		if err := cm.Register(metrics.Registry()); err != nil {
			return fmt.Errorf("cue metrics: %w", err)
		}
		clusterCues.Observer, cueService.ClusterObserver = cm, cm
		cueService.Owners = leaseOwners{s.leases}
		clusterCues.OpenWhen(s.node.Ready(), func() { s.ready.Set(telemetry.ReadyCueStore, true) })
	}

	// One registry for every ingest protocol (and the camera pulls), so
	// that a publisher coming back over another protocol replaces its old
	// session.
	reg := ingest.NewRegistry(log)
	reg.TakeoverSilence = cfg.PublishTakeoverSilence
	if s.leases != nil {
		reg.Leases = s.leases
	}
	auth := &ingest.Auth{Enabled: cfg.PublishAuth, Keys: cfg.PublishKeys}
	rtmp := &ingest.RTMPServer{
		Address:           cfg.RTMP,
		Sink:              s.ladder,
		Auth:              auth,
		Registry:          reg,
		Logger:            log,
		ReadTimeout:       cfg.RTMPReadTimeout,
		MaxConns:          cfg.RTMPMaxConns,
		MaxAMFMessageSize: cfg.RTMPMaxAMFBytes,
	}
	if err := rtmp.Start(); err != nil {
		return err
	}
	s.push(rtmp.Close)
	// ANNOUNCE/RECORD at rtsp://HOST:PORT/live/KEY, TCP and UDP transports,
	// with the same stream-key rules as RTMP.
	rtsp := &ingest.RTSPServer{
		Address:        cfg.RTSP,
		UDPRTPAddress:  cfg.RTSPUDPRTP,
		UDPRTCPAddress: cfg.RTSPUDPRTCP,
		Sink:           s.ladder,
		Auth:           auth,
		Registry:       reg,
		Logger:         log,
		ReadTimeout:    cfg.RTSPReadTimeout,
	}
	if err := rtsp.Start(); err != nil {
		return err
	}
	s.push(rtsp.Close)
	s.startPulls(reg)

	org := &origin.Server{
		Observer:          metrics,
		Address:           cfg.HTTP,
		Source:            s.manager,
		Logger:            log,
		CORSOrigin:        cfg.CORSOrigin,
		TLSCert:           cfg.TLSCert,
		TLSKey:            cfg.TLSKey,
		ReadHeaderTimeout: cfg.HTTPReadHeaderTimeout,
		ReadTimeout:       cfg.HTTPReadTimeout,
		IdleTimeout:       cfg.HTTPIdleTimeout,
		MaxHeaderBytes:    cfg.HTTPMaxHeaderBytes,
		WriteTimeout:      max(cfg.HTTPWriteTimeout, s.blockingWait()+10*time.Second),
	}
	org.PlayAuth = playAuth
	s.startAudience(org, metrics, cueService, playAuth)
	org.Posters, org.PosterMaxAge = s.ladder, cfg.PosterInterval
	if err := s.startSteering(org); err != nil {
		return err
	}
	if s.leases != nil {
		s.proxy = cluster.NewProxy(s.leases, 0)
		org.Forwarder = s.proxy
		// Read-only, but it shows the nodes' internal URLs: the admin rule.
		org.Handle("GET /api/v1/cluster", adminauth.Rule{Token: cfg.CueToken}.Wrap(&cluster.API{Registry: s.leases, Proxy: s.proxy}))
		metrics.Registry().MustRegister(telemetry.NewClusterCollector(s.clusterStats))
	}
	cueAPI.Start()
	org.Handle("/api/v1/", cueAPI)
	org.Handle("GET /readyz", s.ready)
	if cfg.MetricsAddr == "" {
		org.Handle("GET /metrics", metrics.Handler())
	} else {
		ms := &telemetry.Server{Address: cfg.MetricsAddr, Metrics: metrics, Ready: s.ready, Logger: log}
		if err := ms.Start(); err != nil {
			return err
		}
		s.addrs.Metrics = ms.Addr()
		s.push(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = ms.Shutdown(ctx)
		})
	}
	org.Handle("/sdk/", http.FileServerFS(cues.SDK))
	if rec != nil {
		// DELETE follows the cue API's rule: its token, else loopback only.
		rec.Register(org.Handle, adminauth.Rule{Token: cfg.CueToken})
	}
	pages := web.Config{Streams: s.manager.StreamNames, ContentSteering: len(cfg.Pathways) > 0, Logger: log}
	if rec != nil {
		pages.Replays = func() []web.Replay { return replays(rec) }
	}
	web.New(pages).Register(org.Handle)
	if err := org.Start(); err != nil {
		return err
	}
	s.org = org
	s.addrs.HTTP, s.addrs.RTMP, s.addrs.RTSP = org.Addr(), rtmp.Addr(), rtsp.Addr()
	s.ready.Set(telemetry.ReadyListeners, true)
	if s.leases != nil {
		s.leases.SetURL(s.advertiseURL())
		s.leases.Start()
	}

	httpScheme := "http"
	if cfg.TLSCert != "" {
		httpScheme = "https"
	}
	log.Info("shopcast ready",
		"publish", "rtmp://"+displayAddr(s.addrs.RTMP)+"/live/{stream key}",
		"play", httpScheme+"://"+displayAddr(s.addrs.HTTP)+"/live/{name}/index.m3u8")
	return nil
}

// startAudience mounts the viewers' signals, the pulse and the studio's
// audience view (package audience) on the origin, and forgets idle viewers
// until the server closes. Signals are viewer traffic: they need a play
// token when play tokens are on, never the admin token; the studio view
// follows the cue API's admin rule.
func (s *Server) startAudience(org *origin.Server, metrics *telemetry.Metrics, cueService *cues.Service, playAuth *origin.PlayAuth) {
	cfg := s.cfg
	aud := &audience.Audience{
		Streams:           s.manager,
		AdminToken:        cfg.CueToken,
		CORSOrigin:        cfg.CORSOrigin,
		HeartbeatInterval: cfg.SignalHeartbeatInterval,
		ReactionWindow:    cfg.PulseReactionWindow,
		PulseMaxAge:       cfg.PulseMaxAge,
		MaxBodyBytes:      cfg.SignalMaxBodyBytes,
		MaxBatch:          cfg.SignalMaxBatch,
		ViewerRate:        float64(cfg.SignalRatePerViewer),
		AddressRate:       float64(cfg.SignalRatePerAddress),
		MaxViewers:        cfg.SignalMaxViewers,
		MaxAddresses:      cfg.SignalMaxAddresses,
		MaxStreams:        cfg.SignalMaxStreams,
		MaxPolls:          cfg.SignalMaxPolls,
		MaxProducts:       cfg.SignalMaxProducts,
		Logger:            s.log,
	}
	if playAuth != nil {
		aud.PlayAuth = playAuth
	}
	// Votes are taken only for the polls the cue service reports open, and
	// a closing poll's result carries the audience's counts.
	aud.Polls = cueService
	cueService.Tally = aud.Tally
	aud.Start()
	aud.Register(org.Handle)
	org.StreamFiles = map[string]http.Handler{"pulse.json": aud.Pulse()}
	metrics.Registry().MustRegister(telemetry.NewAudienceCollector(aud, cfg.MetricsMaxStreams))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); aud.Run(ctx) }()
	s.push(func() { cancel(); <-done })
	s.aud = aud
}

// startSteering turns on HLS Content Steering when pathways are set
// (package steering): the multivariant playlists list every variant once
// per pathway, /live/{name}/steering.json ranks the pathways, and the
// pathways' health is probed until the server closes. A pathway naming a
// cluster node takes its health from the cluster: healthy while the
// node's heartbeat is younger than cluster_lease_ttl.
func (s *Server) startSteering(org *origin.Server) error {
	cfg := s.cfg
	if len(cfg.Pathways) == 0 {
		return nil
	}
	sc := steering.Config{
		Pathways:     cfg.Pathways,
		TTL:          cfg.SteeringTTL,
		ProbeTimeout: cfg.SteeringProbeTimeout,
		CORSOrigin:   cfg.CORSOrigin,
		Logger:       s.log,
	}
	if leases := s.leases; leases != nil {
		sc.NodeHealthy = func(node string) (bool, bool) {
			for _, n := range leases.Nodes() {
				if n.Name == node {
					return time.Since(n.Seen) < cfg.ClusterLeaseTTL, true
				}
			}
			return false, false
		}
	}
	st, err := steering.New(sc)
	if err != nil {
		return err
	}
	org.RewriteMultivariant = st.Rewrite
	// Answered here, never forwarded to the stream's owner: the manifest
	// must answer when the owner is the node that died.
	org.LocalFiles = map[string]http.Handler{steering.ManifestFile: st}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); st.Run(ctx) }()
	s.push(func() { cancel(); <-done })
	return nil
}

// checkFileLimit raises the open-file limit to the hard limit and warns,
// once, when the connections the configured limits allow cannot all have a
// descriptor: the server would then fail accept() for everyone on its
// busiest day instead of answering 503 to the requests over a limit.
func (s *Server) checkFileLimit() {
	l, err := fdlimit.Raise()
	if err != nil {
		s.log.Warn("open-file limit not raised", "err", err, "soft", l.Soft, "hard", l.Hard)
	}
	need := uint64(max(s.cfg.MaxBlockedRequests, 0)) + uint64(max(s.cfg.RTMPMaxConns, 0))
	if l.Soft > 0 && !l.Fits(need) {
		s.log.Warn("open-file limit below what max_blocked_requests and rtmp_max_conns allow: raise the hard limit (ulimit -Hn, systemd LimitNOFILE) or lower them",
			"limit", l.Soft, "max_blocked_requests", s.cfg.MaxBlockedRequests, "rtmp_max_conns", s.cfg.RTMPMaxConns)
	}
}

// startPulls starts one ingest.RTSPPull per rtsp_pull entry. They stop,
// and are waited for, before the RTSP and RTMP ingest close.
func (s *Server) startPulls(reg *ingest.Registry) {
	if len(s.cfg.RTSPPull) == 0 {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for name, u := range s.cfg.RTSPPull {
		p := &ingest.RTSPPull{
			Name:        name,
			URL:         u,
			Sink:        s.ladder,
			Registry:    reg,
			Logger:      s.log,
			ReadTimeout: s.cfg.RTSPReadTimeout,
		}
		s.log.Info("pulling a camera", "stream", name, "url", RedactURL(u))
		wg.Go(func() {
			// Run fails at once only on a configuration Validate has
			// already checked; it retries everything else itself.
			if err := p.Run(ctx); err != nil {
				s.log.Error("rtsp pull stopped", "stream", name, "err", err)
			}
		})
	}
	s.push(func() { cancel(); wg.Wait() })
}

// push adds a closer, run before those pushed earlier.
func (s *Server) push(f func()) { s.closers = append(s.closers, f) }

// closeLocked runs the closers in reverse order of Start.
func (s *Server) closeLocked() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	s.closers = nil
}

// Addrs returns the bound listen addresses; they are zero before Start.
func (s *Server) Addrs() Addrs {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addrs
}

// Packager returns the server's packager, for benchmarks and tests that
// look inside (blocked requests, the configuration it applies); nil before
// Start.
func (s *Server) Packager() *packager.Manager {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.manager
}

// Audience returns the server's viewer signals and pulse, for benchmarks
// and tests; nil before Start.
func (s *Server) Audience() *audience.Audience {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.aud
}

// Ladder returns the server's ladder and poster maker, for tests and
// benchmarks that look at its ffmpeg; nil before Start.
func (s *Server) Ladder() *ladder.Ladder {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ladder
}

// Run starts the server unless Start already has, serves until ctx ends,
// and shuts down: /readyz turns unready, HTTP requests in flight (blocked
// playlist requests included) get up to max(ShutdownTimeout, 3 target
// durations + 1s), then the publishers end, then the streams, and the cue
// store closes last. It returns Start's error, or nil after a shutdown.
func (s *Server) Run(ctx context.Context) error {
	s.mu.Lock()
	started := s.started
	s.mu.Unlock()
	if !started {
		if err := s.Start(); err != nil {
			return err
		}
	}
	<-ctx.Done()

	s.mu.Lock()
	org, closers := s.org, s.closers
	s.org, s.closers = nil, nil
	s.mu.Unlock()
	if org == nil {
		return nil // Start failed and has closed what it opened
	}
	// Load balancers stop sending traffic while requests drain.
	s.ready.Set(telemetry.ReadyListeners, false)
	s.log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), max(s.cfg.ShutdownTimeout, s.blockingWait()))
	defer cancel()
	if err := org.Shutdown(sctx); err != nil {
		s.log.Warn("HTTP requests cut short by shutdown", "err", err)
	}
	// The publishers, then the streams, then the store.
	for i := len(closers) - 1; i >= 0; i-- {
		closers[i]()
	}
	return nil
}

// displayAddr writes a listen address for a URL a person can use:
// "localhost" stands in for the wildcard address.
func displayAddr(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok {
		return a.String()
	}
	if tcp.IP == nil || tcp.IP.IsUnspecified() {
		return net.JoinHostPort("localhost", fmt.Sprint(tcp.Port))
	}
	return tcp.String()
}

// replays lists the recordings for the index page.
func replays(rec *recorder.Recorder) []web.Replay {
	var out []web.Replay
	for _, m := range rec.List() {
		out = append(out, web.Replay{
			Stream:   m.Stream,
			ID:       m.ID,
			Start:    m.Start,
			Duration: time.Duration(m.DurationMs) * time.Millisecond,
			Products: m.Cues,
			URL:      m.URL(),
			Live:     m.State == recorder.StateRecording,
		})
	}
	return out
}
