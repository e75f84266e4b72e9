package main

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shopcast/shopcast/internal/server"
	"github.com/shopcast/shopcast/ladder"
	"github.com/shopcast/shopcast/steering"
)

// Config is shopcast's configuration: the server's settings and how it
// logs. Each key is read, highest precedence first, from a flag (-http), an
// environment variable (SHOPCAST_HTTP), the JSON file given by -config, and
// the defaults in defaults.json.
type Config struct {
	server.Config
	// LogFormat is "text" or "json". It defaults to "text".
	LogFormat string
	// LogLevel is "debug", "info", "warn" or "error"; debug adds an access
	// log line per HTTP request. It defaults to "info".
	LogLevel string
}

// defaultsJSON holds the default of every key.
//
//go:embed defaults.json
var defaultsJSON []byte

// envPrefix starts every environment variable: SHOPCAST_ + upper-case key.
const envPrefix = "SHOPCAST_"

// errUsage is a command-line error already reported with the usage text.
var errUsage = errors.New("usage")

// A key is one configuration key.
type key struct {
	name  string // JSON key and flag name
	arg   string // flag argument name in the help
	usage string
	// noFlag keeps a secret off the command line.
	noFlag bool
	// value returns the key's field in cfg.
	value func(cfg *Config) flag.Value
}

// keys lists the configuration keys in help order.
var keys = []key{
	{name: "http", arg: "ADDR", usage: "HTTP listen address of the HLS origin",
		value: func(c *Config) flag.Value { return (*stringValue)(&c.HTTP) }},
	{name: "rtmp", arg: "ADDR", usage: "RTMP ingest listen address",
		value: func(c *Config) flag.Value { return (*stringValue)(&c.RTMP) }},
	{name: "rtsp", arg: "ADDR", usage: "RTSP ingest listen address (ANNOUNCE/RECORD at rtsp://HOST:PORT/live/KEY)",
		value: func(c *Config) flag.Value { return (*stringValue)(&c.RTSP) }},
	{name: "tls_cert", arg: "FILE", usage: "TLS certificate (PEM); with tls_key the origin serves HTTPS and HTTP/2",
		value: func(c *Config) flag.Value { return (*stringValue)(&c.TLSCert) }},
	{name: "tls_key", arg: "FILE", usage: "TLS private key (PEM)",
		value: func(c *Config) flag.Value { return (*stringValue)(&c.TLSKey) }},
	{name: "log_format", arg: "text|json", usage: "log format",
		value: func(c *Config) flag.Value { return (*stringValue)(&c.LogFormat) }},
	{name: "log_level", arg: "LEVEL", usage: "log level: debug, info, warn or error (debug logs every HTTP request)",
		value: func(c *Config) flag.Value { return (*stringValue)(&c.LogLevel) }},
	{name: "cors_origin", arg: "ORIGIN", usage: "Access-Control-Allow-Origin of stream files",
		value: func(c *Config) flag.Value { return (*stringValue)(&c.CORSOrigin) }},
	{name: "target_duration", arg: "DURATION", usage: "segment target duration (EXT-X-TARGETDURATION)",
		value: func(c *Config) flag.Value { return (*durationValue)(&c.TargetDuration) }},
	{name: "part_target", arg: "DURATION", usage: "partial segment target duration (PART-TARGET)",
		value: func(c *Config) flag.Value { return (*durationValue)(&c.PartTarget) }},
	{name: "window_segments", arg: "N", usage: "segments in a media playlist (at least 6)",
		value: func(c *Config) flag.Value { return (*intValue)(&c.WindowSegments) }},
	{name: "grace_period", arg: "DURATION", usage: "how long a stream waits for its publisher to reconnect before it ends",
		value: func(c *Config) flag.Value { return (*durationValue)(&c.GracePeriod) }},
	{name: "ended_linger", arg: "DURATION", usage: "how long an ended stream stays servable",
		value: func(c *Config) flag.Value { return (*durationValue)(&c.EndedLinger) }},
	{name: "max_streams", arg: "N", usage: "maximum concurrent streams",
		value: func(c *Config) flag.Value { return (*intValue)(&c.MaxStreams) }},
	{name: "max_blocked_requests", arg: "N", usage: "maximum blocking playlist/part requests waiting at once",
		value: func(c *Config) flag.Value { return (*intValue)(&c.MaxBlockedRequests) }},
	{name: "max_blocked_per_client", arg: "N", usage: "maximum blocking requests waiting at once from one client address",
		value: func(c *Config) flag.Value { return (*intValue)(&c.MaxBlockedPerClient) }},
	{name: "max_blocked_per_stream", arg: "N", usage: "maximum blocking requests waiting at once on one stream",
		value: func(c *Config) flag.Value { return (*intValue)(&c.MaxBlockedPerStream) }},
	{name: "rtmp_read_timeout", arg: "DURATION", usage: "close an RTMP connection silent this long",
		value: func(c *Config) flag.Value { return (*durationValue)(&c.RTMPReadTimeout) }},
	{name: "rtsp_read_timeout", arg: "DURATION", usage: "close an RTSP publisher's connection, or a camera pull, silent this long",
		value: func(c *Config) flag.Value { return (*durationValue)(&c.RTSPReadTimeout) }},
	{name: "rtsp_pull", noFlag: true, usage: `stream name -> RTSP URL of a camera to pull and publish under that name; file: {"NAME": "rtsp://HOST/PATH"}, env: NAME=URL,NAME2=URL2; never a flag (URLs carry camera passwords), never logged with a password`,
		value: func(c *Config) flag.Value { return (*pullsValue)(&c.RTSPPull) }},
	{name: "shutdown_timeout", arg: "DURATION", usage: "graceful shutdown wait for HTTP requests in flight (at least 3x target_duration + 1s)",
		value: func(c *Config) flag.Value { return (*durationValue)(&c.ShutdownTimeout) }},
	{name: "publish_takeover_silence", arg: "DURATION", usage: "a publisher from another address may replace a live one that has sent nothing this long",
		value: func(c *Config) flag.Value { return (*durationValue)(&c.PublishTakeoverSilence) }},
	{name: "publish_auth", usage: "only publish_keys may publish; otherwise the stream key is the public name",
		value: func(c *Config) flag.Value { return (*boolValue)(&c.PublishAuth) }},
	{name: "rtsp_udp_rtp", arg: "ADDR", usage: "UDP address for RTSP publishers' RTP (even port); empty: TCP only",
		value: func(c *Config) flag.Value { return (*stringValue)(&c.RTSPUDPRTP) }},
	{name: "rtsp_udp_rtcp", arg: "ADDR", usage: "UDP address for RTSP publishers' RTCP (the RTP port + 1)",
		value: func(c *Config) flag.Value { return (*stringValue)(&c.RTSPUDPRTCP) }},
	{name: "play_secret", noFlag: true, usage: "HMAC key of signed play URLs (at least 16 bytes); empty: stream files are public; never a flag, never logged",
		value: func(c *Config) flag.Value { return (*stringValue)(&c.PlaySecret) }},
	{name: "play_token_ttl", arg: "DURATION", usage: "lifetime of the play tokens shopcast makes",
		value: func(c *Config) flag.Value { return (*durationValue)(&c.PlayTokenTTL) }},
	{name: "http_read_header_timeout", arg: "DURATION", usage: "time allowed to send request headers",
		value: func(c *Config) flag.Value { return (*durationValue)(&c.HTTPReadHeaderTimeout) }},
	{name: "http_read_timeout", arg: "DURATION", usage: "time allowed to send a whole request",
		value: func(c *Config) flag.Value { return (*durationValue)(&c.HTTPReadTimeout) }},
	{name: "http_write_timeout", arg: "DURATION", usage: "time allowed to write a response (at least 3x target_duration + 11s)",
		value: func(c *Config) flag.Value { return (*durationValue)(&c.HTTPWriteTimeout) }},
	{name: "http_idle_timeout", arg: "DURATION", usage: "keep-alive connections idle this long are closed",
		value: func(c *Config) flag.Value { return (*durationValue)(&c.HTTPIdleTimeout) }},
	{name: "http_max_header_bytes", arg: "N", usage: "largest request headers accepted (bytes)",
		value: func(c *Config) flag.Value { return (*intValue)(&c.HTTPMaxHeaderBytes) }},
	{name: "rtmp_max_conns", arg: "N", usage: "maximum concurrent RTMP connections",
		value: func(c *Config) flag.Value { return (*intValue)(&c.RTMPMaxConns) }},
	{name: "rtmp_max_amf_bytes", arg: "N", usage: "largest RTMP AMF message accepted (bytes)",
		value: func(c *Config) flag.Value { return (*intValue)(&c.RTMPMaxAMFBytes) }},
	{name: "metrics_addr", arg: "ADDR", usage: "listen address of /metrics and /readyz; empty: /metrics on the HTTP port",
		value: func(c *Config) flag.Value { return (*stringValue)(&c.MetricsAddr) }},
	{name: "metrics_max_streams", arg: "N", usage: "streams with their own metrics label; the rest are summed as \"other\"",
		value: func(c *Config) flag.Value { return (*intValue)(&c.MetricsMaxStreams) }},
	{name: "cue_store", arg: "FILE", usage: "embedded cue database (bbolt), created when missing",
		value: func(c *Config) flag.Value { return (*stringValue)(&c.CueStore) }},
	{name: "cue_token", noFlag: true, usage: "bearer token of the cue and admin APIs; empty: direct requests from this machine only (no proxy); never a flag, never logged",
		value: func(c *Config) flag.Value { return (*stringValue)(&c.CueToken) }},
	{name: "max_cue_bytes", arg: "N", usage: "largest cue JSON accepted (bytes)",
		value: func(c *Config) flag.Value { return (*intValue)(&c.MaxCueBytes) }},
	{name: "cue_rate", arg: "N", usage: "cues accepted per second per stream",
		value: func(c *Config) flag.Value { return (*intValue)(&c.CueRate) }},
	{name: "cue_commit_delay", arg: "DURATION", usage: "how long a cue store write waits for others to share its fsynced commit (longer: fewer fsyncs beside the media, slower POSTs)",
		value: func(c *Config) flag.Value { return (*durationValue)(&c.CueCommitDelay) }},
	{name: "cue_schedule", arg: "FILE", usage: "JSON cue schedule (ms from stream start) applied to every stream",
		value: func(c *Config) flag.Value { return (*stringValue)(&c.CueSchedule) }},
	{name: "record", usage: "write every stream to disk as a replay (segments, playlist, cues)",
		value: func(c *Config) flag.Value { return (*boolValue)(&c.Record) }},
	{name: "record_dir", arg: "DIR", usage: "directory of the recordings; empty: \"recordings\" next to cue_store",
		value: func(c *Config) flag.Value { return (*stringValue)(&c.RecordDir) }},
	{name: "record_retention", arg: "DURATION", usage: "how long a finished recording is kept; 0: forever",
		value: func(c *Config) flag.Value { return (*durationValue)(&c.RecordRetention) }},
	{name: "record_min_free_bytes", arg: "N", usage: "pause recording (live goes on) below this much free disk space; 0: never",
		value: func(c *Config) flag.Value { return (*int64Value)(&c.RecordMinFreeBytes) }},
	{name: "publish_keys", noFlag: true, usage: `secret stream key -> public name; file: {"KEY": "NAME"}, env: KEY=NAME,KEY2=NAME2; never a flag, never logged`,
		value: func(c *Config) flag.Value { return (*keysValue)(&c.PublishKeys) }},
	{name: "webhooks", noFlag: true, usage: `endpoints of signed webhook events: [{"url": "https://...", "secret": "whsec_...", "events": ["cue.started"]}] in the file or the environment (events: optional filter); never a flag, secrets never logged`,
		value: func(c *Config) flag.Value { return (*webhooksValue)(&c.Webhooks) }},
	{name: "webhook_outbox", arg: "FILE", usage: "file (bbolt) of the webhook events not yet delivered; empty: shopcast-webhooks.db next to cue_store",
		value: func(c *Config) flag.Value { return (*stringValue)(&c.WebhookOutbox) }},
	{name: "webhook_outbox_max", arg: "N", usage: "deliveries the webhook outbox holds; when full, the oldest are dropped",
		value: func(c *Config) flag.Value { return (*intValue)(&c.WebhookOutboxMax) }},
	{name: "webhook_queue", arg: "N", usage: "webhook events waiting to be written to the outbox; more are dropped rather than slow the streams",
		value: func(c *Config) flag.Value { return (*intValue)(&c.WebhookQueue) }},
	{name: "webhook_attempts", arg: "N", usage: "attempts of a webhook delivery before it is given up",
		value: func(c *Config) flag.Value { return (*intValue)(&c.WebhookAttempts) }},
	{name: "webhook_backoff_base", arg: "DURATION", usage: "wait after a webhook delivery's first failed attempt, doubled after each further one",
		value: func(c *Config) flag.Value { return (*durationValue)(&c.WebhookBackoffBase) }},
	{name: "webhook_backoff_max", arg: "DURATION", usage: "longest wait between two attempts of a webhook delivery",
		value: func(c *Config) flag.Value { return (*durationValue)(&c.WebhookBackoffMax) }},
	{name: "webhook_timeout", arg: "DURATION", usage: "time allowed to one webhook delivery attempt",
		value: func(c *Config) flag.Value { return (*durationValue)(&c.WebhookTimeout) }},
	{name: "signal_heartbeat_interval", arg: "DURATION", usage: "how often a watch page sends a heartbeat; a viewer counts for two intervals after its last",
		value: func(c *Config) flag.Value { return (*durationValue)(&c.SignalHeartbeatInterval) }},
	{name: "signal_max_body_bytes", arg: "N", usage: "largest signals POST body (bytes; 413 beyond)",
		value: func(c *Config) flag.Value { return (*intValue)(&c.SignalMaxBodyBytes) }},
	{name: "signal_max_batch", arg: "N", usage: "most signals in one POST",
		value: func(c *Config) flag.Value { return (*intValue)(&c.SignalMaxBatch) }},
	{name: "signal_rate_per_viewer", arg: "N", usage: "signals per second one viewer id may send (a bucket of two seconds' worth; 429 beyond)",
		value: func(c *Config) flag.Value { return (*intValue)(&c.SignalRatePerViewer) }},
	{name: "signal_rate_per_address", arg: "N", usage: "signals POSTs per second one client address may make (viewers behind one NAT share it; 429 beyond)",
		value: func(c *Config) flag.Value { return (*intValue)(&c.SignalRatePerAddress) }},
	{name: "signal_max_viewers", arg: "N", usage: "viewer ids tracked at once over all streams (503 for newcomers beyond)",
		value: func(c *Config) flag.Value { return (*intValue)(&c.SignalMaxViewers) }},
	{name: "signal_max_addresses", arg: "N", usage: "client addresses rate-limited at once (503 for newcomers beyond)",
		value: func(c *Config) flag.Value { return (*intValue)(&c.SignalMaxAddresses) }},
	{name: "signal_max_streams", arg: "N", usage: "streams with audience counters at once",
		value: func(c *Config) flag.Value { return (*intValue)(&c.SignalMaxStreams) }},
	{name: "signal_max_polls", arg: "N", usage: "polls tallied per stream; the oldest is forgotten first",
		value: func(c *Config) flag.Value { return (*intValue)(&c.SignalMaxPolls) }},
	{name: "signal_max_products", arg: "N", usage: "products with a studio funnel per stream; the one seen longest ago is forgotten first",
		value: func(c *Config) flag.Value { return (*intValue)(&c.SignalMaxProducts) }},
	{name: "pulse_max_age", arg: "DURATION", usage: "max-age and s-maxage of /live/NAME/pulse.json (a CDN serves it)",
		value: func(c *Config) flag.Value { return (*durationValue)(&c.PulseMaxAge) }},
	{name: "pulse_reaction_window", arg: "DURATION", usage: "how far back the pulse counts reactions (at most 60s)",
		value: func(c *Config) flag.Value { return (*durationValue)(&c.PulseReactionWindow) }},
	{name: "ladder", arg: "JSON", usage: `adaptive bitrate ladder ffmpeg makes for every H.264/H.265 stream, one variant per rung: [{"name":"480p","height":480,"video_bitrate":"1200k"}, ...]; empty: none`,
		value: func(c *Config) flag.Value { return (*rungsValue)(&c.Ladder) }},
	{name: "ffmpeg_path", arg: "FILE", usage: "ffmpeg of the ladder and the posters; empty: ffmpeg on PATH",
		value: func(c *Config) flag.Value { return (*stringValue)(&c.FFmpegPath) }},
	{name: "ladder_preset", arg: "PRESET", usage: "libx264 preset of the ladder's rungs",
		value: func(c *Config) flag.Value { return (*stringValue)(&c.LadderPreset) }},
	{name: "ladder_queue_frames", arg: "N", usage: "source frames that may wait for a ladder's ffmpeg; beyond, frames are dropped and ffmpeg restarted",
		value: func(c *Config) flag.Value { return (*intValue)(&c.LadderQueueFrames) }},
	{name: "ladder_restart_min", arg: "DURATION", usage: "first wait before a ladder ffmpeg that died is started again (doubles up to ladder_restart_max)",
		value: func(c *Config) flag.Value { return (*durationValue)(&c.LadderRestartMin) }},
	{name: "ladder_restart_max", arg: "DURATION", usage: "longest wait before a ladder ffmpeg is started again",
		value: func(c *Config) flag.Value { return (*durationValue)(&c.LadderRestartMax) }},
	{name: "ladder_max_streams", arg: "N", usage: "streams with a ladder at once (each ffmpeg takes a good share of a core); others play without",
		value: func(c *Config) flag.Value { return (*intValue)(&c.LadderMaxStreams) }},
	{name: "poster_interval", arg: "DURATION", usage: "how often each stream's /live/NAME/poster.jpg is made from a keyframe; 0: no posters",
		value: func(c *Config) flag.Value { return (*durationValue)(&c.PosterInterval) }},
	{name: "poster_concurrency", arg: "N", usage: "poster ffmpegs running at once",
		value: func(c *Config) flag.Value { return (*intValue)(&c.PosterConcurrency) }},
	{name: "max_variants", arg: "N", usage: "maximum variants (renditions besides the source's) of one stream",
		value: func(c *Config) flag.Value { return (*intValue)(&c.MaxVariants) }},
	{name: "cluster_node", arg: "NAME", usage: "this node's name in a shopcast cluster (unique); empty: a single node, nothing else to run",
		value: func(c *Config) flag.Value { return (*stringValue)(&c.ClusterNode) }},
	{name: "cluster_advertise", arg: "URL", usage: "URL at which the other nodes reach this node's HTTP origin; empty: from the HTTP address and the host name",
		value: func(c *Config) flag.Value { return (*stringValue)(&c.ClusterAdvertise) }},
	{name: "cluster_nats_url", arg: "URLS", usage: "existing NATS cluster (nats://HOST:4222,...; JetStream on) instead of the embedded NATS server",
		value: func(c *Config) flag.Value { return (*stringValue)(&c.ClusterNATSURL) }},
	{name: "cluster_nats_listen", arg: "ADDR", usage: "client address of the embedded NATS server",
		value: func(c *Config) flag.Value { return (*stringValue)(&c.ClusterNATSListen) }},
	{name: "cluster_route_listen", arg: "ADDR", usage: "route address of the embedded NATS server, named in the other nodes' cluster_routes; empty: a cluster of one",
		value: func(c *Config) flag.Value { return (*stringValue)(&c.ClusterRouteListen) }},
	{name: "cluster_routes", arg: "URLS", usage: "route URLs of the members (nats://HOST:6222,...; this node's own may be listed, so every node has the same list)",
		value: func(c *Config) flag.Value { return (*listValue)(&c.ClusterRoutes) }},
	{name: "cluster_store_dir", arg: "DIR", usage: "JetStream store of the embedded NATS server; empty: \"nats\" next to cue_store",
		value: func(c *Config) flag.Value { return (*stringValue)(&c.ClusterStoreDir) }},
	{name: "cluster_user", arg: "USER", usage: "NATS user (with cluster_password) of the embedded server's clients and routes, or of cluster_nats_url",
		value: func(c *Config) flag.Value { return (*stringValue)(&c.ClusterUser) }},
	{name: "cluster_password", noFlag: true, usage: "NATS password of cluster_user; never a flag, never logged",
		value: func(c *Config) flag.Value { return (*stringValue)(&c.ClusterPassword) }},
	{name: "cluster_token", noFlag: true, usage: "NATS token instead of cluster_user and cluster_password; never a flag, never logged",
		value: func(c *Config) flag.Value { return (*stringValue)(&c.ClusterToken) }},
	{name: "cluster_replicas", arg: "N", usage: "replicas of the cluster's registry and logs; 0: min(3, members)",
		value: func(c *Config) flag.Value { return (*intValue)(&c.ClusterReplicas) }},
	{name: "cluster_lease_ttl", arg: "DURATION", usage: "a stream's lease lives this long without a renewal: a dead node's streams are free this long after it died (at least 1s)",
		value: func(c *Config) flag.Value { return (*durationValue)(&c.ClusterLeaseTTL) }},
	{name: "cluster_lease_renew", arg: "DURATION", usage: "how often a node renews the leases of its streams (under cluster_lease_ttl)",
		value: func(c *Config) flag.Value { return (*durationValue)(&c.ClusterLeaseRenew) }},
	{name: "cue_cluster_place_wait", arg: "DURATION", usage: "in a cluster, how long a cue POST to a node that does not own the stream waits for the owner's placement before answering 202 (queued)",
		value: func(c *Config) flag.Value { return (*durationValue)(&c.CueClusterPlaceWait) }},
	{name: "cue_cluster_timeout", arg: "DURATION", usage: "in a cluster, how long each JetStream request of the cue store may take; a write not acknowledged in time answers 503",
		value: func(c *Config) flag.Value { return (*durationValue)(&c.CueClusterTimeout) }},
	{name: "cluster_request_timeout", arg: "DURATION", usage: "in a cluster, how long each JetStream request of a stream's claim may take before it is retried (a registry without a RAFT leader does not answer)",
		value: func(c *Config) flag.Value { return (*durationValue)(&c.ClusterRequestTimeout) }},
	{name: "cluster_claim_wait", arg: "DURATION", usage: "in a cluster, how long a publisher's claim retries while the stream registry does not answer (a RAFT election) before the publisher is refused",
		value: func(c *Config) flag.Value { return (*durationValue)(&c.ClusterClaimWait) }},
	{name: "cluster_provisional", usage: "in a cluster, whether a stream's lease may rest on the word of a majority of the members while the stream registry cannot be written (a RAFT election), up to cluster_claim_wait: owners keep their streams and a reconnecting publisher is accepted at once",
		value: func(c *Config) flag.Value { return (*boolValue)(&c.ClusterProvisional) }},
	{name: "cluster_query_timeout", arg: "DURATION", usage: "in a cluster, how long a node waits for the other members' answers when it asks them who owns a stream its registry watch cannot confirm",
		value: func(c *Config) flag.Value { return (*durationValue)(&c.ClusterQueryTimeout) }},
	{name: "cluster_route_ping", arg: "DURATION", usage: "the embedded NATS server's ping interval on its routes; a member that vanished silently is dropped after three unanswered pings (at most 30s)",
		value: func(c *Config) flag.Value { return (*durationValue)(&c.ClusterRoutePing) }},
	{name: "aligned_timeline", usage: "number segments and parts from program date-time, each target_duration long, so that two nodes fed the same encoder (keyframe interval = target_duration) serve interchangeable playlists; see docs/redundancy.md",
		value: func(c *Config) flag.Value { return (*boolValue)(&c.AlignedTimeline) }},
	{name: "pathways", arg: "JSON", usage: `HLS Content Steering: the base URLs serving every stream, [{"id":"a","url":"https://a.example.com","node":"n1"}, ...]; node (optional) takes the health from the cluster; empty: no steering`,
		value: func(c *Config) flag.Value { return (*pathwaysValue)(&c.Pathways) }},
	{name: "steering_ttl", arg: "DURATION", usage: "TTL of /live/NAME/steering.json (whole seconds); pathways without a node are probed every steering_ttl/2",
		value: func(c *Config) flag.Value { return (*durationValue)(&c.SteeringTTL) }},
	{name: "steering_probe_timeout", arg: "DURATION", usage: "timeout of one /healthz probe of a pathway (under steering_ttl/2)",
		value: func(c *Config) flag.Value { return (*durationValue)(&c.SteeringProbeTimeout) }},
}

func (k key) env() string { return envPrefix + strings.ToUpper(k.name) }

// loadConfig reads the configuration from args (without the program name),
// the environment (lookupEnv) and the files they name. -h prints the help to
// stderr and returns flag.ErrHelp.
func loadConfig(args []string, lookupEnv func(string) (string, bool), stderr io.Writer) (Config, error) {
	var defaults Config
	if err := applyJSON(&defaults, defaultsJSON); err != nil {
		return Config{}, fmt.Errorf("embedded defaults: %w", err)
	}

	fs := flag.NewFlagSet("shopcast", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { printUsage(stderr, &defaults) }
	configFile := fs.String("config", "", "")
	flags := make(map[string]*pendingValue)
	for _, k := range keys {
		if k.noFlag {
			continue
		}
		p := &pendingValue{isBool: isBoolValue(k.value(&defaults))}
		flags[k.name] = p
		fs.Var(p, k.name, k.usage)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return Config{}, err
		}
		return Config{}, fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return Config{}, fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}

	cfg := defaults
	cfg.PublishKeys, cfg.RTSPPull = nil, nil // never share the defaults' maps

	// The config file: -config, else SHOPCAST_CONFIG.
	path := *configFile
	if path == "" {
		path, _ = lookupEnv(envPrefix + "CONFIG")
	}
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return Config{}, fmt.Errorf("config file: %w", err)
		}
		if err := applyJSON(&cfg, b); err != nil {
			return Config{}, fmt.Errorf("config file %s: %w", path, err)
		}
	}

	for _, k := range keys {
		if v, ok := lookupEnv(k.env()); ok {
			if err := k.value(&cfg).Set(v); err != nil {
				return Config{}, fmt.Errorf("environment %s: %w", k.env(), err)
			}
		}
	}

	for _, k := range keys {
		if p := flags[k.name]; p != nil && p.set {
			if err := k.value(&cfg).Set(p.raw); err != nil {
				return Config{}, fmt.Errorf("flag -%s: %w", k.name, err)
			}
		}
	}

	if cfg.PublishKeys == nil {
		cfg.PublishKeys = map[string]string{}
	}
	if cfg.RTSPPull == nil {
		cfg.RTSPPull = map[string]string{}
	}
	if err := cfg.validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// applyJSON sets the keys present in a JSON object. Unknown keys are errors,
// so a typo does not silently leave a default in place.
func applyJSON(cfg *Config, b []byte) error {
	var obj map[string]json.RawMessage
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&obj); err != nil {
		return err
	}
	byName := make(map[string]key, len(keys))
	for _, k := range keys {
		byName[k.name] = k
	}
	// In name order, so that a broken file always gives the same error.
	for _, name := range slices.Sorted(maps.Keys(obj)) {
		k, ok := byName[name]
		if !ok {
			return fmt.Errorf("unknown key %q", name)
		}
		if err := setJSON(k.value(cfg), obj[name]); err != nil {
			return fmt.Errorf("key %s: %w", name, err)
		}
	}
	return nil
}

// setJSON sets v from a JSON value: a string, number or boolean as its text,
// an object through jsonSetter.
func setJSON(v flag.Value, raw json.RawMessage) error {
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) == 0 || string(raw) == "null":
		return errors.New("null value")
	case raw[0] == '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return err
		}
		return v.Set(s)
	case raw[0] == '{' || raw[0] == '[':
		js, ok := v.(jsonSetter)
		if !ok {
			return errors.New("want a string, number or boolean")
		}
		return js.SetJSON(raw)
	default: // number, true, false
		return v.Set(string(raw))
	}
}

// validate checks the values that no single key's parser can.
func (c *Config) validate() error {
	var errs []error
	if c.LogFormat != "text" && c.LogFormat != "json" {
		errs = append(errs, fmt.Errorf("log_format: %q is not text or json", c.LogFormat))
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		errs = append(errs, fmt.Errorf("log_level: %w", err))
	}
	errs = append(errs, c.Config.Validate())
	return errors.Join(errs...)
}

// parseLevel parses a log level name.
func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	switch strings.ToLower(s) {
	case "debug", "info", "warn", "error":
		return l, l.UnmarshalText([]byte(s))
	}
	return l, fmt.Errorf("%q is not debug, info, warn or error", s)
}

// LogValue shows the configuration in logs, with publish_keys reduced to
// their number.
func (c Config) LogValue() slog.Value {
	attrs := make([]slog.Attr, 0, len(keys))
	for _, k := range keys {
		v := k.value(&c).String()
		if k.name == "publish_keys" {
			v = strconv.Itoa(len(c.PublishKeys)) + " keys"
		}
		if (k.name == "cue_token" && c.CueToken != "") || (k.name == "play_secret" && c.PlaySecret != "") ||
			(k.name == "cluster_password" && c.ClusterPassword != "") || (k.name == "cluster_token" && c.ClusterToken != "") {
			v = "(set)"
		}
		if k.name == "cluster_nats_url" || k.name == "cluster_routes" {
			v = redactURLs(v)
		}
		attrs = append(attrs, slog.String(k.name, v))
	}
	return slog.GroupValue(attrs...)
}

// printUsage writes the -h text: every key with its flag, environment
// variable and default.
func printUsage(w io.Writer, defaults *Config) {
	fmt.Fprint(w, `shopcast is a live-shopping LL-HLS media server: encoders publish over RTMP,
viewers play low-latency HLS from the HTTP origin, directly or through a CDN.

Usage: shopcast [flags]

Every key is read, highest precedence first, from its flag, its environment
variable, the JSON config file, and the built-in default.

  -config FILE   (env SHOPCAST_CONFIG)
        JSON file of keys, e.g. {"http": ":80", "publish_keys": {"KEY": "NAME"}}

A cluster of three nodes (docs/cluster.md) sets, on each node, its own
cluster_node and cluster_advertise, the same cluster_routes and the same
cluster_token (from the environment):
  SHOPCAST_CLUSTER_TOKEN=... shopcast -cluster_node n1 \
    -cluster_advertise http://10.0.0.1:8080 -cluster_route_listen 10.0.0.1:6222 \
    -cluster_routes nats://10.0.0.1:6222,nats://10.0.0.2:6222,nats://10.0.0.3:6222

`)
	for _, k := range keys {
		def := k.value(defaults).String()
		switch {
		case k.name == "publish_keys" || k.name == "rtsp_pull":
			def = "none"
		case def == "":
			def = `""`
		}
		if k.noFlag {
			fmt.Fprintf(w, "  %s   (env %s or config file only; default %s)\n", k.name, k.env(), def)
		} else {
			flagArg := "-" + k.name
			if k.arg != "" {
				flagArg += " " + k.arg
			}
			fmt.Fprintf(w, "  %s   (env %s, default %s)\n", flagArg, k.env(), def)
		}
		fmt.Fprintf(w, "        %s\n", k.usage)
	}
}

// pendingValue keeps a flag's text until the lower-precedence sources have
// been read.
type pendingValue struct {
	raw    string
	set    bool
	isBool bool
}

func (p *pendingValue) String() string     { return p.raw }
func (p *pendingValue) Set(s string) error { p.raw, p.set = s, true; return nil }
func (p *pendingValue) IsBoolFlag() bool   { return p.isBool }

func isBoolValue(v flag.Value) bool {
	b, ok := v.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// jsonSetter is a value that can also be set from a JSON object.
type jsonSetter interface {
	SetJSON(raw json.RawMessage) error
}

type stringValue string

func (v *stringValue) String() string     { return string(*v) }
func (v *stringValue) Set(s string) error { *v = stringValue(s); return nil }

type intValue int

func (v *intValue) String() string { return strconv.Itoa(int(*v)) }
func (v *intValue) Set(s string) error {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("%q is not an integer", s)
	}
	*v = intValue(n)
	return nil
}

type int64Value int64

func (v *int64Value) String() string { return strconv.FormatInt(int64(*v), 10) }
func (v *int64Value) Set(s string) error {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return fmt.Errorf("%q is not an integer", s)
	}
	*v = int64Value(n)
	return nil
}

type boolValue bool

func (v *boolValue) String() string   { return strconv.FormatBool(bool(*v)) }
func (v *boolValue) IsBoolFlag() bool { return true }
func (v *boolValue) Set(s string) error {
	b, err := strconv.ParseBool(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("%q is not true or false", s)
	}
	*v = boolValue(b)
	return nil
}

type durationValue time.Duration

func (v *durationValue) String() string { return time.Duration(*v).String() }
func (v *durationValue) Set(s string) error {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("%q is not a duration such as 2s or 333ms", s)
	}
	*v = durationValue(d)
	return nil
}

// keysValue is publish_keys. Its errors and String never show a key.
type keysValue map[string]string

func (v *keysValue) String() string {
	if v == nil || len(*v) == 0 {
		return ""
	}
	return fmt.Sprintf("%d keys", len(*v))
}

// Set parses "key1=name1,key2=name2", replacing any earlier keys.
func (v *keysValue) Set(s string) error {
	m := map[string]string{}
	for i, entry := range strings.Split(s, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		k, name, ok := strings.Cut(entry, "=")
		k, name = strings.TrimSpace(k), strings.TrimSpace(name)
		if !ok || k == "" || name == "" {
			return fmt.Errorf("entry %d is not KEY=NAME", i+1)
		}
		if _, dup := m[k]; dup {
			return fmt.Errorf("entry %d repeats a key", i+1)
		}
		m[k] = name
	}
	*v = m
	return nil
}

// SetJSON parses {"key1": "name1", ...}, replacing any earlier keys.
func (v *keysValue) SetJSON(raw json.RawMessage) error {
	var m map[string]string
	if err := json.Unmarshal(raw, &m); err != nil {
		return errors.New(`want an object {"KEY": "NAME"} of strings`)
	}
	for k, name := range m {
		if k == "" || name == "" {
			return errors.New("empty key or name")
		}
	}
	*v = m
	return nil
}

// listValue is a list of strings: "a,b" in flags and the environment, a
// string or an array of strings in the config file.
type listValue []string

func (v *listValue) String() string {
	if v == nil {
		return ""
	}
	return strings.Join(*v, ",")
}

// Set parses "a,b", replacing any earlier entries; "" is none.
func (v *listValue) Set(s string) error {
	var l []string
	for e := range strings.SplitSeq(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			l = append(l, e)
		}
	}
	*v = l
	return nil
}

// SetJSON parses ["a", "b"], replacing any earlier entries.
func (v *listValue) SetJSON(raw json.RawMessage) error {
	var l []string
	if err := json.Unmarshal(raw, &l); err != nil {
		return errors.New(`want an array ["nats://HOST:6222", ...] of strings`)
	}
	return v.Set(strings.Join(l, ","))
}

// redactURLs is a comma-separated URL list without passwords.
func redactURLs(s string) string {
	if s == "" {
		return s
	}
	parts := strings.Split(s, ",")
	for i, p := range parts {
		parts[i] = server.RedactURL(strings.TrimSpace(p))
	}
	return strings.Join(parts, ",")
}

// pullsValue is rtsp_pull. Its String never shows a password.
type pullsValue map[string]string

func (v *pullsValue) String() string {
	if v == nil || len(*v) == 0 {
		return ""
	}
	var b strings.Builder
	for i, name := range slices.Sorted(maps.Keys(*v)) {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(name + "=" + server.RedactURL((*v)[name]))
	}
	return b.String()
}

// Set parses "name1=url1,name2=url2", replacing any earlier entries. A URL
// holds no comma (RFC 3986 allows one, cameras' paths do not use it).
func (v *pullsValue) Set(s string) error {
	m := map[string]string{}
	for i, entry := range strings.Split(s, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		name, u, ok := strings.Cut(entry, "=")
		name, u = strings.TrimSpace(name), strings.TrimSpace(u)
		if !ok || name == "" || u == "" {
			return fmt.Errorf("entry %d is not NAME=URL", i+1)
		}
		if _, dup := m[name]; dup {
			return fmt.Errorf("entry %d repeats the name %q", i+1, name)
		}
		m[name] = u
	}
	*v = m
	return nil
}

// SetJSON parses {"name1": "url1", ...}, replacing any earlier entries.
func (v *pullsValue) SetJSON(raw json.RawMessage) error {
	var m map[string]string
	if err := json.Unmarshal(raw, &m); err != nil {
		return errors.New(`want an object {"NAME": "rtsp://HOST/PATH"} of strings`)
	}
	*v = m
	return nil
}

// rungsValue is ladder: a JSON array of rungs, in the file as it is, in a
// flag or the environment as its text.
type rungsValue []ladder.Rung

func (v *rungsValue) String() string {
	if v == nil || len(*v) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(*v)
	return string(b)
}

func (v *rungsValue) Set(s string) error { return v.SetJSON(json.RawMessage(s)) }

// SetJSON parses [{"name": ..., "height": ..., "video_bitrate": ...}],
// replacing any earlier ladder; unknown fields are errors.
func (v *rungsValue) SetJSON(raw json.RawMessage) error {
	var rungs []ladder.Rung
	d := json.NewDecoder(bytes.NewReader(raw))
	d.DisallowUnknownFields()
	if err := d.Decode(&rungs); err != nil {
		return fmt.Errorf(`want an array [{"name": "480p", "height": 480, "video_bitrate": "1200k"}]: %w`, err)
	}
	if len(rungs) == 0 {
		rungs = nil
	}
	*v = rungs
	return nil
}

// pathwaysValue is pathways: a JSON array, in the file as it is, in a flag
// or the environment as its text.
type pathwaysValue []steering.Pathway

func (v *pathwaysValue) String() string {
	if v == nil || len(*v) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(*v)
	return string(b)
}

func (v *pathwaysValue) Set(s string) error { return v.SetJSON(json.RawMessage(s)) }

// SetJSON parses [{"id": ..., "url": ..., "node": ...}], replacing any
// earlier list; unknown fields are errors.
func (v *pathwaysValue) SetJSON(raw json.RawMessage) error {
	var ps []steering.Pathway
	d := json.NewDecoder(bytes.NewReader(raw))
	d.DisallowUnknownFields()
	if err := d.Decode(&ps); err != nil {
		return fmt.Errorf(`want an array [{"id": "a", "url": "https://a.example.com", "node": "n1"}]: %w`, err)
	}
	if len(ps) == 0 {
		ps = nil
	}
	*v = ps
	return nil
}
