package server

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/shopcast/shopcast/cluster"
	"github.com/shopcast/shopcast/ingest"
	"github.com/shopcast/shopcast/ladder"
	"github.com/shopcast/shopcast/origin"
	"github.com/shopcast/shopcast/steering"
	"github.com/shopcast/shopcast/webhooks"
)

// Config is the server's settings. Each field's comment states its default,
// the value Defaults returns; cmd/shopcast reads them from flags, the
// environment and a JSON file, with the same defaults in its defaults.json.
type Config struct {
	// HTTP is the listen address of the HLS origin. It defaults to ":8080".
	HTTP string
	// RTMP is the listen address of the RTMP ingest. It defaults to ":1935".
	RTMP string
	// RTSP is the listen address of the RTSP ingest. It defaults to ":8554".
	RTSP string
	// RTSPUDPRTP and RTSPUDPRTCP are the UDP ports of RTSP publishers that
	// use UDP transport: RTP on an even port, RTCP on the next one. Empty
	// turns UDP off (TCP only). They default to ":8000" and ":8001".
	RTSPUDPRTP  string
	RTSPUDPRTCP string
	// TLSCert and TLSKey are PEM files; when both are set the origin serves
	// HTTPS with HTTP/2. They default to "" (cleartext HTTP/1.1 and h2c).
	TLSCert string
	TLSKey  string
	// CORSOrigin is the Access-Control-Allow-Origin sent with stream files.
	// It defaults to "*".
	CORSOrigin string
	// TargetDuration is the segment target duration (EXT-X-TARGETDURATION).
	// It defaults to 2s.
	TargetDuration time.Duration
	// PartTarget is the partial segment target duration (EXT-X-PART-INF
	// PART-TARGET). It defaults to 333ms.
	PartTarget time.Duration
	// WindowSegments is the number of segments in a media playlist, at
	// least 6. It defaults to 10.
	WindowSegments int
	// GracePeriod is how long a stream waits for its publisher to reconnect
	// before it ends. It defaults to 30s.
	GracePeriod time.Duration
	// EndedLinger is how long an ended stream stays servable. It defaults
	// to 30s.
	EndedLinger time.Duration
	// MaxStreams caps concurrent streams. It defaults to 100.
	MaxStreams int
	// MaxBlockedRequests caps blocking playlist and preload-hint requests
	// waiting at once. It defaults to 20000.
	MaxBlockedRequests int
	// MaxBlockedPerClient caps those of one client IP address. It defaults
	// to 500.
	MaxBlockedPerClient int
	// MaxBlockedPerStream caps those of one stream. It defaults to 20000.
	MaxBlockedPerStream int
	// RTMPReadTimeout closes an RTMP connection that sends nothing this
	// long. It defaults to 10s.
	RTMPReadTimeout time.Duration
	// RTSPReadTimeout closes an RTSP publisher's connection, or a pull from
	// a camera, that sends nothing this long. It defaults to 10s.
	RTSPReadTimeout time.Duration
	// RTSPPull maps a public stream name to the RTSP URL of a camera (or
	// encoder, or media server) that shopcast reads and publishes under
	// that name, reconnecting when the source drops. The URL may carry
	// credentials (rtsp://USER:PASS@HOST/PATH); they are never logged. It
	// defaults to none.
	RTSPPull map[string]string
	// ShutdownTimeout is how long a graceful shutdown waits for HTTP
	// requests in flight; it is raised to 3x TargetDuration + 1s so blocked
	// playlist requests are answered. It defaults to 10s.
	ShutdownTimeout time.Duration
	// PublishTakeoverSilence is how long a live publisher must have sent
	// nothing before a newcomer from another address, without its key, may
	// replace it; OBS's reconnect over a hung session waits that long. It
	// defaults to 3s.
	PublishTakeoverSilence time.Duration
	// PublishAuth makes publishers present one of PublishKeys as their
	// stream key. It defaults to false: the stream key is the public name.
	PublishAuth bool
	// PublishKeys maps each secret stream key to the public stream name it
	// publishes. It is never logged. It defaults to none.
	PublishKeys map[string]string
	// PlaySecret is the HMAC key of signed play URLs (at least 16 bytes);
	// empty (the default) leaves stream files public. It is never logged.
	PlaySecret string
	// PlayTokenTTL is the lifetime of play tokens shopcast makes. It
	// defaults to 2h.
	PlayTokenTTL time.Duration
	// HTTPReadHeaderTimeout, HTTPReadTimeout and HTTPIdleTimeout bound slow
	// or idle HTTP clients (slowloris). They default to 10s, 15s and 120s.
	HTTPReadHeaderTimeout time.Duration
	HTTPReadTimeout       time.Duration
	HTTPIdleTimeout       time.Duration
	// HTTPWriteTimeout bounds writing one response; it is raised to 3x
	// target_duration + 11s so blocking requests finish. It defaults to 30s.
	HTTPWriteTimeout time.Duration
	// HTTPMaxHeaderBytes caps request headers. It defaults to 65536.
	HTTPMaxHeaderBytes int
	// RTMPMaxConns caps concurrent RTMP connections. It defaults to 200.
	RTMPMaxConns int
	// RTMPMaxAMFBytes caps one RTMP AMF message (commands, metadata). It
	// defaults to 65536.
	RTMPMaxAMFBytes int
	// MetricsAddr is the listen address of /metrics and /readyz; empty (the
	// default) serves /metrics on the HTTP port.
	MetricsAddr string
	// MetricsMaxStreams is how many streams get their own metrics label;
	// the rest are summed as "other". It defaults to 50.
	MetricsMaxStreams int
	// CueStore is the file of the embedded cue database (bbolt), created
	// when missing. It defaults to "shopcast-cues.db".
	CueStore string
	// CueToken is the bearer token of the cue API. Empty (the default)
	// serves the API to loopback clients only. It is never logged.
	CueToken string
	// MaxCueBytes caps one cue's JSON. It defaults to 8192.
	MaxCueBytes int
	// CueRate caps cues posted per second per stream. It defaults to 50.
	CueRate int
	// CueCommitDelay is how long a write to the cue store waits for others
	// to share its fsynced commit. It defaults to 50ms.
	CueCommitDelay time.Duration
	// CueSchedule is a JSON file of cues (times relative to stream start)
	// applied to every stream when it starts. It defaults to "" (none).
	CueSchedule string
	// Record writes every stream to disk as a replay (package recorder):
	// the live segments, a playlist that grows while live and is closed
	// at the end, every cue as EXT-X-DATERANGE. It defaults to true.
	Record bool
	// RecordDir holds the recordings. Empty (the default) is "recordings"
	// next to the cue store: filepath.Join(filepath.Dir(CueStore),
	// "recordings").
	RecordDir string
	// RecordRetention is how long a finished recording is kept; 0 keeps
	// recordings forever. It defaults to 720h (30 days).
	RecordRetention time.Duration
	// RecordMinFreeBytes pauses recording (the live streams go on) while
	// RecordDir's file system has less free space than this; 0 never
	// pauses. It defaults to 1073741824 (1 GiB).
	RecordMinFreeBytes int64

	// Webhooks are the endpoints that receive signed events
	// (stream.started, stream.ended, recording.ready, cue.started,
	// cue.ended, poll.closed; package webhooks, docs/webhooks.md). Their
	// secrets are never logged. It defaults to none.
	Webhooks []webhooks.Endpoint
	// WebhookOutbox is the file (bbolt) of the events not yet delivered.
	// Empty (the default) is "shopcast-webhooks.db" next to the cue store.
	WebhookOutbox string
	// WebhookOutboxMax caps the deliveries waiting in the outbox; when
	// full, the oldest are dropped. It defaults to 10000.
	WebhookOutboxMax int
	// WebhookQueue is how many events may wait to be written to the
	// outbox; more are dropped rather than slow the streams. It defaults
	// to 1024.
	WebhookQueue int
	// WebhookAttempts is how many times a delivery is tried before it is
	// given up. It defaults to 8.
	WebhookAttempts int
	// WebhookBackoffBase is the wait after a delivery's first failed
	// attempt, doubled after each further one up to WebhookBackoffMax.
	// They default to 1s and 5m.
	WebhookBackoffBase time.Duration
	WebhookBackoffMax  time.Duration
	// WebhookTimeout bounds one delivery attempt. It defaults to 10s.
	WebhookTimeout time.Duration

	// Audience signals and the pulse (package audience).
	// SignalHeartbeatInterval is how often a watch page sends a heartbeat signal; a viewer counts as
	// watching for two intervals after its last one. It defaults to 10s.
	SignalHeartbeatInterval time.Duration
	// SignalMaxBodyBytes caps one signals POST's body (413 beyond). It defaults to 4096.
	SignalMaxBodyBytes int
	// SignalMaxBatch caps the signals of one POST. It defaults to 10.
	SignalMaxBatch int
	// SignalRatePerViewer is how many signals a second one viewer id may send, a token
	// bucket holding two seconds' worth (429 beyond). It defaults to 5.
	SignalRatePerViewer int
	// SignalRatePerAddress is how many signals POSTs a second one client address may
	// make, a token bucket holding two seconds' worth (429 beyond); viewers
	// behind one NAT share it. It defaults to 100.
	SignalRatePerAddress int
	// SignalMaxViewers caps the viewer ids tracked at once over all streams (about
	// 150 bytes each; 503 for newcomers beyond). It defaults to 100000.
	SignalMaxViewers int
	// SignalMaxAddresses caps the client addresses rate-limited at once. It defaults
	// to 10000.
	SignalMaxAddresses int
	// SignalMaxStreams caps the streams with audience counters at once. It defaults
	// to 100.
	SignalMaxStreams int
	// SignalMaxPolls caps the polls tallied per stream; the oldest is forgotten
	// first. It defaults to 16.
	SignalMaxPolls int
	// SignalMaxProducts caps the products with a studio funnel per stream; the one
	// seen longest ago is forgotten first. It defaults to 256.
	SignalMaxProducts int
	// PulseMaxAge is the max-age and s-maxage of /live/{name}/pulse.json, so that a
	// CDN serves it. It defaults to 1s.
	PulseMaxAge time.Duration
	// PulseReactionWindow is how far back the pulse counts reactions (at most
	// 60s). It defaults to 5s.
	PulseReactionWindow time.Duration
	// Ladder is the adaptive bitrate ladder ffmpeg makes for every stream
	// with H.264 or H.265 video (package ladder): one variant per rung,
	// beside the source. It defaults to none.
	Ladder []ladder.Rung
	// FFmpegPath is the ffmpeg of the ladder and the posters. It defaults
	// to "" (ffmpeg on PATH).
	FFmpegPath string
	// LadderPreset is libx264's preset for the rungs. It defaults to
	// "veryfast".
	LadderPreset string
	// LadderQueueFrames is how many source frames may wait for a ladder's
	// ffmpeg before it counts as fallen behind (frames dropped, ffmpeg
	// restarted). It defaults to 60.
	LadderQueueFrames int
	// LadderRestartMin and LadderRestartMax bound the backoff before a
	// ladder's ffmpeg that died is started again. They default to 1s and
	// 30s.
	LadderRestartMin time.Duration
	LadderRestartMax time.Duration
	// LadderMaxStreams caps the streams with a ladder at once. It defaults
	// to 4.
	LadderMaxStreams int
	// PosterInterval is how often each stream's poster.jpg is made from a
	// keyframe; 0 makes none. It defaults to 10s.
	PosterInterval time.Duration
	// PosterConcurrency caps the poster ffmpegs running at once. It
	// defaults to 2.
	PosterConcurrency int
	// MaxVariants caps the variants (renditions besides the source's: an
	// OBS multitrack publisher's other video tracks, the ffmpeg ladder's
	// rungs) of one stream. It defaults to 8.
	MaxVariants int

	// The cluster block (package cluster): off unless ClusterNode is set.

	// ClusterNode is this node's name in a shopcast cluster; empty (the
	// default) runs a single node with nothing else to run.
	ClusterNode string
	// ClusterAdvertise is the URL (http://HOST:PORT) at which the other
	// nodes reach this node's HTTP origin. Empty (the default) is derived
	// from the bound HTTP address and the host name.
	ClusterAdvertise string
	// ClusterNATSURL is an existing NATS cluster (comma-separated
	// nats:// URLs, JetStream on) to use instead of the embedded server.
	// It defaults to "" (embedded).
	ClusterNATSURL string
	// ClusterNATSListen is the embedded NATS server's client address. It
	// defaults to "127.0.0.1:4222".
	ClusterNATSListen string
	// ClusterRouteListen is the embedded NATS server's route address,
	// which the other nodes' ClusterRoutes name; empty runs a cluster of
	// one. It defaults to ":6222".
	ClusterRouteListen string
	// ClusterRoutes are the route URLs (nats://HOST:6222) of the cluster's
	// members; this node's own may be among them. It defaults to none.
	ClusterRoutes []string
	// ClusterStoreDir is the embedded NATS server's JetStream store.
	// Empty (the default) is "nats" next to the cue store.
	ClusterStoreDir string
	// ClusterUser and ClusterPassword, or ClusterToken, are the NATS
	// credentials (required by the embedded server of clients and routes,
	// presented to ClusterNATSURL). They are never logged. They default
	// to none.
	ClusterUser     string
	ClusterPassword string
	ClusterToken    string
	// ClusterReplicas is the replica count of the cluster's registry and
	// logs; 0 (the default) is min(3, members).
	ClusterReplicas int
	// ClusterLeaseTTL is how long a stream's lease lives without a
	// renewal: a dead node's streams are free this long after it died (at
	// least 1s). It defaults to 3s.
	ClusterLeaseTTL time.Duration
	// ClusterLeaseRenew is how often a node renews its leases, under
	// ClusterLeaseTTL. It defaults to 1s.
	ClusterLeaseRenew time.Duration

	// The cluster's cues (cues.ClusterStore, docs/cluster.md "Cues").

	// CueClusterPlaceWait is how long a cue POST to a node that does not
	// own the stream waits for the owner to place the cue before it
	// answers 202 (queued) instead of 201. It defaults to 1s.
	CueClusterPlaceWait time.Duration
	// CueClusterTimeout bounds each JetStream request of the cluster's cue
	// store: a write not acknowledged in time answers 503. It defaults to
	// 2s.
	CueClusterTimeout time.Duration

	// The cluster's failover (docs/cluster.md, "Failover").

	// ClusterRequestTimeout bounds each JetStream request of a stream's
	// claim; a request sent while the registry has no RAFT leader is
	// retried after it. It defaults to 1s.
	ClusterRequestTimeout time.Duration
	// ClusterClaimWait is how long a publisher's claim retries while the
	// registry does not answer (a RAFT election) before the publisher is
	// refused. It defaults to 15s.
	ClusterClaimWait time.Duration
	// ClusterProvisional lets a stream's lease rest on the word of a
	// majority of the members while the registry cannot be written (a
	// RAFT election), for up to ClusterClaimWait: owners keep their
	// streams and a reconnecting publisher is accepted at once. On by
	// default.
	ClusterProvisional bool
	// ClusterQueryTimeout bounds the members query that confirms a
	// stream's owner when the registry's watch cannot. It defaults to
	// 300ms.
	ClusterQueryTimeout time.Duration
	// ClusterRoutePing is the embedded NATS server's ping interval on its
	// routes: a member that vanished without closing its connections
	// (host down, network cut) is dropped after three unanswered pings.
	// It defaults to 2s (NATS's own default is 2m).
	ClusterRoutePing time.Duration

	// Redundant ingest (docs/redundancy.md).

	// AlignedTimeline numbers segments and parts from program date-time,
	// every segment TargetDuration long, so that nodes fed the same
	// encoder (whose keyframe interval must be TargetDuration) serve
	// interchangeable playlists. It defaults to false: numbers count
	// arrivals.
	AlignedTimeline bool

	// Pathways turn on HLS Content Steering (package steering,
	// docs/steering.md): each is a base URL at which every stream is
	// served, optionally with the cluster node serving it. The
	// multivariant playlist then lists every variant once per pathway and
	// /live/{name}/steering.json ranks them by health. It defaults to none:
	// no steering, the playlists as they were.
	Pathways []steering.Pathway
	// SteeringTTL is the steering manifest's TTL (whole seconds); the
	// pathways without a cluster node are probed every SteeringTTL/2. It
	// defaults to 10s.
	SteeringTTL time.Duration
	// SteeringProbeTimeout bounds one /healthz probe of a pathway (under
	// SteeringTTL/2). It defaults to 1s.
	SteeringProbeTimeout time.Duration

	// recordFreeBytes replaces the recorder's statfs in tests (a full
	// disk); nil reads the file system.
	recordFreeBytes func(dir string) (int64, error)
}

// SetRecordFreeBytes replaces the free-space reading of RecordDir, so that
// a test can fake a full disk; nil reads the file system.
func (c *Config) SetRecordFreeBytes(f func(dir string) (int64, error)) { c.recordFreeBytes = f }

// RecordPath is the directory of the recordings: RecordDir, or
// "recordings" next to the cue store.
func (c *Config) RecordPath() string {
	if c.RecordDir != "" {
		return c.RecordDir
	}
	return filepath.Join(filepath.Dir(c.CueStore), "recordings")
}

// WebhookOutboxPath is the file of the webhook outbox: WebhookOutbox, or
// "shopcast-webhooks.db" next to the cue store.
func (c *Config) WebhookOutboxPath() string {
	if c.WebhookOutbox != "" {
		return c.WebhookOutbox
	}
	return filepath.Join(filepath.Dir(c.CueStore), "shopcast-webhooks.db")
}

// ClusterStorePath is the embedded NATS server's JetStream store:
// ClusterStoreDir, or "nats" next to the cue store.
func (c *Config) ClusterStorePath() string {
	if c.ClusterStoreDir != "" {
		return c.ClusterStoreDir
	}
	return filepath.Join(filepath.Dir(c.CueStore), "nats")
}

// clusterConfig is the cluster block as package cluster's Config.
func (c *Config) clusterConfig() cluster.Config {
	return cluster.Config{
		Name:        c.ClusterNode,
		NATSURL:     c.ClusterNATSURL,
		Listen:      c.ClusterNATSListen,
		RouteListen: c.ClusterRouteListen,
		Routes:      c.ClusterRoutes,
		StoreDir:    c.ClusterStorePath(),
		User:        c.ClusterUser,
		Password:    c.ClusterPassword,
		Token:       c.ClusterToken,
		Replicas:    c.ClusterReplicas,
		RoutePing:   c.ClusterRoutePing,
	}
}

// Defaults returns the default of every setting, for embedders and tests
// that change a few; cmd/shopcast's defaults.json holds the same values
// (its tests check that they agree).
func Defaults() Config {
	return Config{
		HTTP:                    ":8080",
		RTMP:                    ":1935",
		RTSP:                    ":8554",
		RTSPUDPRTP:              ":8000",
		RTSPUDPRTCP:             ":8001",
		CORSOrigin:              "*",
		TargetDuration:          2 * time.Second,
		PartTarget:              333 * time.Millisecond,
		WindowSegments:          10,
		GracePeriod:             30 * time.Second,
		EndedLinger:             30 * time.Second,
		MaxStreams:              100,
		MaxBlockedRequests:      20000,
		MaxBlockedPerClient:     500,
		MaxBlockedPerStream:     20000,
		RTMPReadTimeout:         10 * time.Second,
		RTSPReadTimeout:         10 * time.Second,
		PublishTakeoverSilence:  3 * time.Second,
		RTSPPull:                map[string]string{},
		ShutdownTimeout:         10 * time.Second,
		PublishKeys:             map[string]string{},
		PlayTokenTTL:            2 * time.Hour,
		HTTPReadHeaderTimeout:   10 * time.Second,
		HTTPReadTimeout:         15 * time.Second,
		HTTPWriteTimeout:        30 * time.Second,
		HTTPIdleTimeout:         120 * time.Second,
		HTTPMaxHeaderBytes:      65536,
		RTMPMaxConns:            200,
		RTMPMaxAMFBytes:         65536,
		MetricsMaxStreams:       50,
		CueStore:                "shopcast-cues.db",
		MaxCueBytes:             8192,
		CueRate:                 50,
		CueCommitDelay:          50 * time.Millisecond,
		Record:                  true,
		RecordRetention:         30 * 24 * time.Hour,
		RecordMinFreeBytes:      1 << 30,
		Webhooks:                []webhooks.Endpoint{},
		WebhookOutboxMax:        10000,
		WebhookQueue:            1024,
		WebhookAttempts:         8,
		WebhookBackoffBase:      time.Second,
		WebhookBackoffMax:       5 * time.Minute,
		WebhookTimeout:          10 * time.Second,
		SignalHeartbeatInterval: 10 * time.Second,
		SignalMaxBodyBytes:      4096,
		SignalMaxBatch:          10,
		SignalRatePerViewer:     5,
		SignalRatePerAddress:    100,
		SignalMaxViewers:        100000,
		SignalMaxAddresses:      10000,
		SignalMaxStreams:        100,
		SignalMaxPolls:          16,
		SignalMaxProducts:       256,
		PulseMaxAge:             time.Second,
		PulseReactionWindow:     5 * time.Second,
		MaxVariants:             8,
		LadderPreset:            "veryfast",
		LadderQueueFrames:       60,
		LadderRestartMin:        time.Second,
		LadderRestartMax:        30 * time.Second,
		LadderMaxStreams:        4,
		PosterInterval:          10 * time.Second,
		PosterConcurrency:       2,
		ClusterNATSListen:       "127.0.0.1:4222",
		ClusterRouteListen:      ":6222",
		ClusterLeaseTTL:         3 * time.Second,
		ClusterLeaseRenew:       time.Second,
		CueClusterPlaceWait:     time.Second,
		CueClusterTimeout:       2 * time.Second,
		ClusterRequestTimeout:   time.Second,
		ClusterClaimWait:        15 * time.Second,
		ClusterProvisional:      true,
		ClusterQueryTimeout:     300 * time.Millisecond,
		ClusterRoutePing:        2 * time.Second,
		AlignedTimeline:         false,
		SteeringTTL:             steering.DefaultTTL,
		SteeringProbeTimeout:    steering.DefaultProbeTimeout,
	}
}

// Validate checks the settings, naming each bad one by its config key, so
// that a server never starts with a setting it would only refuse later (a
// bad stream name at the first publish, a camera URL at the first pull).
// Errors never show a secret: publish keys, tokens, or credentials in
// camera URLs.
func (c *Config) Validate() error {
	var errs []error
	check := func(ok bool, format string, a ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, a...))
		}
	}
	check(c.HTTP != "", "http: empty address")
	check(c.RTMP != "", "rtmp: empty address")
	check((c.TLSCert == "") == (c.TLSKey == ""), "tls_cert and tls_key: set both or neither")
	check(c.TargetDuration >= time.Second, "target_duration: %v is under 1s", c.TargetDuration)
	check(c.PartTarget > 0 && c.PartTarget < c.TargetDuration,
		"part_target: %v is not between 0 and target_duration (%v)", c.PartTarget, c.TargetDuration)
	check(c.WindowSegments >= 6, "window_segments: %d is under 6", c.WindowSegments)
	check(c.GracePeriod > 0, "grace_period: %v is not positive", c.GracePeriod)
	check(c.EndedLinger > 0, "ended_linger: %v is not positive", c.EndedLinger)
	check(c.MaxStreams > 0, "max_streams: %d is not positive", c.MaxStreams)
	check(c.MaxBlockedRequests > 0, "max_blocked_requests: %d is not positive", c.MaxBlockedRequests)
	check(c.MaxBlockedPerClient > 0, "max_blocked_per_client: %d is not positive", c.MaxBlockedPerClient)
	check(c.MaxBlockedPerStream > 0, "max_blocked_per_stream: %d is not positive", c.MaxBlockedPerStream)
	check(c.RTMPReadTimeout > 0, "rtmp_read_timeout: %v is not positive", c.RTMPReadTimeout)
	check(c.PublishTakeoverSilence > 0, "publish_takeover_silence: %v is not positive", c.PublishTakeoverSilence)
	check(c.RTSPReadTimeout > 0, "rtsp_read_timeout: %v is not positive", c.RTSPReadTimeout)
	check(c.ShutdownTimeout > 0, "shutdown_timeout: %v is not positive", c.ShutdownTimeout)
	check(c.MaxCueBytes > 0, "max_cue_bytes: %d is not positive", c.MaxCueBytes)
	check(c.PlaySecret == "" || len(c.PlaySecret) >= origin.MinPlaySecretBytes, "play_secret: shorter than %d bytes", origin.MinPlaySecretBytes)
	check(c.PlayTokenTTL > 0, "play_token_ttl: %v is not positive", c.PlayTokenTTL)
	for _, d := range []time.Duration{c.HTTPReadHeaderTimeout, c.HTTPReadTimeout, c.HTTPWriteTimeout, c.HTTPIdleTimeout} {
		check(d > 0, "http timeouts must be positive, got %v", d)
	}
	check(c.HTTPMaxHeaderBytes > 0, "http_max_header_bytes: %d is not positive", c.HTTPMaxHeaderBytes)
	check(c.RTMPMaxConns > 0, "rtmp_max_conns: %d is not positive", c.RTMPMaxConns)
	check(c.RTMPMaxAMFBytes > 0, "rtmp_max_amf_bytes: %d is not positive", c.RTMPMaxAMFBytes)
	check(c.MetricsMaxStreams > 0, "metrics_max_streams: %d is not positive", c.MetricsMaxStreams)
	check(c.CueRate > 0, "cue_rate: %d is not positive", c.CueRate)
	check(c.CueCommitDelay > 0, "cue_commit_delay: %v is not positive", c.CueCommitDelay)
	check(c.CueClusterPlaceWait > 0, "cue_cluster_place_wait: %v is not positive", c.CueClusterPlaceWait)
	check(c.CueClusterTimeout > 0, "cue_cluster_timeout: %v is not positive", c.CueClusterTimeout)
	check(!c.AlignedTimeline || c.TargetDuration%time.Millisecond == 0,
		"aligned_timeline: target_duration %v is not a whole number of milliseconds", c.TargetDuration)
	check(c.CueStore != "", "cue_store: empty")
	check(c.RecordRetention >= 0, "record_retention: %v is negative", c.RecordRetention)
	check(c.RecordMinFreeBytes >= 0, "record_min_free_bytes: %d is negative", c.RecordMinFreeBytes)
	check(c.MaxVariants > 0, "max_variants: %d is not positive", c.MaxVariants)
	check((c.RTSPUDPRTP == "") == (c.RTSPUDPRTCP == ""), "rtsp_udp_rtp and rtsp_udp_rtcp: set both or neither")
	check(c.SignalHeartbeatInterval > 0, "signal_heartbeat_interval: %v is not positive", c.SignalHeartbeatInterval)
	check(c.SignalMaxBodyBytes > 0, "signal_max_body_bytes: %d is not positive", c.SignalMaxBodyBytes)
	check(c.SignalMaxBatch > 0, "signal_max_batch: %d is not positive", c.SignalMaxBatch)
	check(c.SignalRatePerViewer > 0, "signal_rate_per_viewer: %d is not positive", c.SignalRatePerViewer)
	check(c.SignalRatePerAddress > 0, "signal_rate_per_address: %d is not positive", c.SignalRatePerAddress)
	check(c.SignalMaxViewers > 0, "signal_max_viewers: %d is not positive", c.SignalMaxViewers)
	check(c.SignalMaxAddresses > 0, "signal_max_addresses: %d is not positive", c.SignalMaxAddresses)
	check(c.SignalMaxStreams > 0, "signal_max_streams: %d is not positive", c.SignalMaxStreams)
	check(c.SignalMaxPolls > 0, "signal_max_polls: %d is not positive", c.SignalMaxPolls)
	check(c.SignalMaxProducts > 0, "signal_max_products: %d is not positive", c.SignalMaxProducts)
	check(c.PulseMaxAge > 0, "pulse_max_age: %v is not positive", c.PulseMaxAge)
	check(c.PulseReactionWindow > 0, "pulse_reaction_window: %v is not positive", c.PulseReactionWindow)
	check(c.PulseReactionWindow <= time.Minute, "pulse_reaction_window: %v is over 1m", c.PulseReactionWindow)
	check(!c.PublishAuth || len(c.PublishKeys) > 0, "publish_auth: on, but publish_keys is empty")
	if err := ladder.ValidateRungs(c.Ladder); err != nil {
		errs = append(errs, fmt.Errorf("ladder: %w", err))
	}
	check(len(c.Ladder) <= c.MaxVariants, "ladder: %d rungs, more than max_variants (%d)", len(c.Ladder), c.MaxVariants)
	check(c.LadderPreset != "" && !strings.HasPrefix(c.LadderPreset, "-"), "ladder_preset: %q is not a libx264 preset", c.LadderPreset)
	check(c.LadderQueueFrames > 0, "ladder_queue_frames: %d is not positive", c.LadderQueueFrames)
	check(c.LadderRestartMin > 0, "ladder_restart_min: %v is not positive", c.LadderRestartMin)
	check(c.LadderRestartMax >= c.LadderRestartMin, "ladder_restart_max: %v is under ladder_restart_min (%v)", c.LadderRestartMax, c.LadderRestartMin)
	check(c.LadderMaxStreams > 0, "ladder_max_streams: %d is not positive", c.LadderMaxStreams)
	check(c.PosterInterval == 0 || c.PosterInterval >= time.Second, "poster_interval: %v is neither 0 nor at least 1s", c.PosterInterval)
	check(c.PosterConcurrency > 0, "poster_concurrency: %d is not positive", c.PosterConcurrency)
	if c.ClusterNode != "" {
		cc := c.clusterConfig()
		errs = append(errs, cc.Validate())
		check(c.ClusterLeaseTTL >= time.Second, "cluster_lease_ttl: %v is under 1s", c.ClusterLeaseTTL)
		check(c.ClusterLeaseRenew > 0 && c.ClusterLeaseRenew < c.ClusterLeaseTTL,
			"cluster_lease_renew: %v is not between 0 and cluster_lease_ttl (%v)", c.ClusterLeaseRenew, c.ClusterLeaseTTL)
		check(c.ClusterRequestTimeout > 0, "cluster_request_timeout: %v is not positive", c.ClusterRequestTimeout)
		check(c.ClusterClaimWait > 0, "cluster_claim_wait: %v is not positive", c.ClusterClaimWait)
		check(c.ClusterQueryTimeout > 0, "cluster_query_timeout: %v is not positive", c.ClusterQueryTimeout)
		check(c.ClusterRoutePing > 0 && c.ClusterRoutePing <= 30*time.Second,
			"cluster_route_ping: %v is not between 0 and 30s (NATS's maximum for routes)", c.ClusterRoutePing)
		if c.ClusterAdvertise != "" {
			if u, err := url.Parse(c.ClusterAdvertise); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				errs = append(errs, fmt.Errorf("cluster_advertise: %q is not an http:// or https:// URL", c.ClusterAdvertise))
			}
		}
	}
	// The public names of publish_keys are checked here, not at the first
	// publish; the error never shows the secret key.
	for _, name := range c.PublishKeys {
		if err := ingest.ValidateName(name); err != nil {
			errs = append(errs, fmt.Errorf("publish_keys: %w", err))
		}
	}
	// In name order, so that a broken config always gives the same errors.
	for _, name := range slices.Sorted(maps.Keys(c.RTSPPull)) {
		if err := checkPull(name, c.RTSPPull[name]); err != nil {
			errs = append(errs, fmt.Errorf("rtsp_pull: %w", err))
		}
	}
	for i := range c.Webhooks {
		// The errors name the URL without its password, never the secret.
		if err := c.Webhooks[i].Validate(); err != nil {
			errs = append(errs, fmt.Errorf("webhooks: endpoint %d: %w", i+1, err))
		}
	}
	check(c.WebhookOutboxMax > 0, "webhook_outbox_max: %d is not positive", c.WebhookOutboxMax)
	check(c.WebhookQueue > 0, "webhook_queue: %d is not positive", c.WebhookQueue)
	check(c.WebhookAttempts > 0, "webhook_attempts: %d is not positive", c.WebhookAttempts)
	check(c.WebhookBackoffBase > 0, "webhook_backoff_base: %v is not positive", c.WebhookBackoffBase)
	check(c.WebhookBackoffMax >= c.WebhookBackoffBase, "webhook_backoff_max: %v is under webhook_backoff_base (%v)", c.WebhookBackoffMax, c.WebhookBackoffBase)
	check(c.WebhookTimeout > 0, "webhook_timeout: %v is not positive", c.WebhookTimeout)
	if err := steering.ValidatePathways(c.Pathways); err != nil {
		errs = append(errs, fmt.Errorf("pathways: %w", err))
	}
	check(c.SteeringTTL >= time.Second && c.SteeringTTL%time.Second == 0, "steering_ttl: %v is not a whole number of seconds", c.SteeringTTL)
	check(c.SteeringProbeTimeout > 0 && c.SteeringProbeTimeout < c.SteeringTTL/2,
		"steering_probe_timeout: %v is not between 0 and steering_ttl/2 (%v)", c.SteeringProbeTimeout, c.SteeringTTL/2)
	return errors.Join(errs...)
}

// checkPull checks one rtsp_pull entry. Its errors show the URL without
// its password.
func checkPull(name, raw string) error {
	if err := ingest.ValidateName(name); err != nil {
		return err
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error quotes the whole URL, password included.
		return fmt.Errorf("%s: the URL does not parse", name)
	}
	if u.Scheme != "rtsp" && u.Scheme != "rtsps" {
		return fmt.Errorf("%s: %s is not an rtsp:// or rtsps:// URL", name, u.Redacted())
	}
	if u.Host == "" {
		return fmt.Errorf("%s: %s has no host", name, u.Redacted())
	}
	return nil
}

// RedactURL is raw without the password it may carry, for logs and
// errors; a URL that does not parse is shown as "(unparsable URL)".
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
