package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtp"
)

// errPullIdle ends an on-demand pull that nobody asked for within
// IdleTimeout.
var errPullIdle = errors.New("idle")

// errNameTaken ends a pull attempt whose stream name another publisher took.
var errNameTaken = errors.New("stream name taken by another publisher")

// errPublishRefused ends a pull attempt whose publication the Sink refused
// (or whose packet handler failed).
var errPublishRefused = errors.New("publication refused")

// RTSPPull reads a stream from an RTSP server (an IP camera, an encoder, a
// media server) and publishes it under Name. When the connection drops it
// reconnects, waiting MinBackoff, then twice as long after each failure up
// to MaxBackoff; each connection is a new publication of the Sink under the
// same name, so the packager continues the same playlist after a
// discontinuity.
//
// Tracks the Sink cannot take (G.711, MPEG-1 audio, ...) are left out with a
// warning: a camera's settings are not the publisher's to fix.
type RTSPPull struct {
	// Name is the public stream name.
	Name string
	// URL is the source, rtsp://HOST[:PORT]/PATH (or rtsps://).
	URL string
	// User and Pass are the source's credentials; when User is set they
	// replace any in URL. Basic and Digest authentication are supported.
	User, Pass string
	// Transport is "tcp", "udp", or empty for UDP with a fall back to TCP
	// when no packet arrives within 3s. It defaults to empty.
	Transport string
	// OnDemand pulls only while viewers ask for the stream: Run waits for
	// Demand, and stops pulling IdleTimeout after the last Demand. It
	// defaults to false: Run pulls all the time.
	OnDemand bool
	// IdleTimeout is how long an on-demand pull goes on after the last
	// Demand (checked four times per IdleTimeout, so it stops within 1.25
	// IdleTimeout). It defaults to 30s.
	IdleTimeout time.Duration
	// Sink receives the publications.
	Sink Sink
	// Registry tracks the publisher of each stream name. The pull claims
	// Name for each connection; when another publisher takes the name over,
	// the pull yields until that publisher is gone. It defaults to nil: no
	// coordination.
	Registry *Registry
	// Logger receives connection lines. It defaults to slog.Default().
	Logger *slog.Logger
	// MinBackoff is the wait before reconnecting after a failure. It
	// defaults to 1s.
	MinBackoff time.Duration
	// MaxBackoff caps the wait between reconnections. It defaults to 30s.
	MaxBackoff time.Duration
	// ReadTimeout ends a connection that received nothing for this long. It
	// defaults to 10s.
	ReadTimeout time.Duration

	initOnce   sync.Once
	demand     chan struct{}
	lastDemand atomic.Int64 // unix nanoseconds
}

func (p *RTSPPull) init() {
	p.initOnce.Do(func() { p.demand = make(chan struct{}, 1) })
}

// Demand tells an on-demand pull that a viewer wants the stream: it starts
// pulling if it is not, and keeps pulling for IdleTimeout more. It does not
// wait for the stream. The origin calls it for each request of a stream that
// is pulled on demand.
func (p *RTSPPull) Demand() {
	p.init()
	p.lastDemand.Store(time.Now().UnixNano())
	select {
	case p.demand <- struct{}{}:
	default:
	}
}

type pullConfig struct {
	u         *base.URL
	redacted  string
	transport *gortsplib.Transport
	idle      time.Duration
	minB      time.Duration
	maxB      time.Duration
	read      time.Duration
	log       *slog.Logger
}

func (p *RTSPPull) config() (*pullConfig, error) {
	if p.Sink == nil {
		return nil, errors.New("rtsp pull: no Sink")
	}
	if err := ValidateName(p.Name); err != nil {
		return nil, fmt.Errorf("rtsp pull: %w", err)
	}
	u, err := base.ParseURL(p.URL)
	if err != nil {
		return nil, fmt.Errorf("rtsp pull %s: %w", p.Name, err)
	}
	if p.User != "" {
		u.User = url.UserPassword(p.User, p.Pass)
	}
	c := &pullConfig{
		u:        u,
		redacted: (*url.URL)(u).Redacted(),
		idle:     p.IdleTimeout,
		minB:     p.MinBackoff,
		maxB:     p.MaxBackoff,
		read:     p.ReadTimeout,
		log:      p.Logger,
	}
	switch p.Transport {
	case "":
	case "tcp":
		c.transport = ptrTo(gortsplib.TransportTCP)
	case "udp":
		c.transport = ptrTo(gortsplib.TransportUDP)
	default:
		return nil, fmt.Errorf("rtsp pull %s: transport %q is not tcp or udp", p.Name, p.Transport)
	}
	if c.idle <= 0 {
		c.idle = 30 * time.Second
	}
	if c.minB <= 0 {
		c.minB = time.Second
	}
	if c.maxB <= 0 {
		c.maxB = 30 * time.Second
	}
	c.maxB = max(c.maxB, c.minB)
	if c.read <= 0 {
		c.read = 10 * time.Second
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	c.log = c.log.With("stream", p.Name, "proto", "rtsp-pull", "remote", u.Host)
	return c, nil
}

func ptrTo[T any](v T) *T { return &v }

// Run pulls until ctx is done, then returns nil. It returns an error at once
// if the configuration is invalid.
func (p *RTSPPull) Run(ctx context.Context) error {
	p.init()
	cfg, err := p.config()
	if err != nil {
		return err
	}
	backoff := cfg.minB
	for {
		if p.OnDemand && !p.waitDemand(ctx, cfg) {
			return nil
		}
		if !p.waitNameFree(ctx, cfg) {
			return nil
		}
		if p.OnDemand && p.idle(cfg) {
			continue // the viewers left while another publisher had the name
		}
		published, err := p.pullOnce(ctx, cfg)
		if ctx.Err() != nil {
			return nil
		}
		switch {
		case errors.Is(err, errPullIdle):
			cfg.log.Info("rtsp pull stopped: no viewers", "url", cfg.redacted)
			backoff = cfg.minB
			continue
		case errors.Is(err, errNameTaken):
			backoff = cfg.minB
			continue
		case published:
			// The connection worked for a while: the next failure is a new
			// one.
			backoff = cfg.minB
		}
		cfg.log.Warn("rtsp pull disconnected", "url", cfg.redacted, "err", err, "retry_in", backoff)
		if !p.sleep(ctx, backoff) {
			return nil
		}
		backoff = min(backoff*2, cfg.maxB)
	}
}

// idle reports whether an on-demand pull has had no Demand for IdleTimeout.
func (p *RTSPPull) idle(cfg *pullConfig) bool {
	return p.OnDemand && time.Since(time.Unix(0, p.lastDemand.Load())) >= cfg.idle
}

// waitDemand waits for a recent Demand. It returns false when ctx is done.
func (p *RTSPPull) waitDemand(ctx context.Context, cfg *pullConfig) bool {
	for p.idle(cfg) {
		select {
		case <-ctx.Done():
			return false
		case <-p.demand:
		}
	}
	return true
}

// sleep waits d. It returns false when ctx is done.
func (p *RTSPPull) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// waitNameFree waits while another publisher holds the name, or until an
// on-demand pull is idle. It returns false when ctx is done. The Registry
// has no way to wait for a name, so it looks every MinBackoff.
func (p *RTSPPull) waitNameFree(ctx context.Context, cfg *pullConfig) bool {
	if p.Registry == nil {
		return true
	}
	logged := false
	for {
		holder, ok := p.Registry.Lookup(p.Name)
		if !ok {
			return true
		}
		if !logged {
			cfg.log.Info("rtsp pull waiting: another publisher has the stream name",
				"holder_proto", holder.Proto, "holder_remote", holder.Remote)
			logged = true
		}
		if !p.sleep(ctx, cfg.minB) {
			return false
		}
		if p.OnDemand && p.idle(cfg) {
			return true
		}
	}
}

// pullOnce runs one connection. published tells whether media reached the
// Sink.
func (p *RTSPPull) pullOnce(ctx context.Context, cfg *pullConfig) (published bool, err error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	c := &gortsplib.Client{
		Scheme:      cfg.u.Scheme,
		Host:        cfg.u.Host,
		Transport:   cfg.transport,
		ReadTimeout: cfg.read,
	}
	var pub *rtspPublication
	var pubMu sync.Mutex
	withPub := func(f func(*rtspPublication)) {
		pubMu.Lock()
		defer pubMu.Unlock()
		if pub != nil {
			f(pub)
		}
	}
	c.OnPacketsLost = func(lost uint64) {
		withPub(func(p *rtspPublication) { p.warn("rtsp: RTP packets lost", "lost", lost) })
	}
	c.OnTransportSwitch = func(err error) {
		cfg.log.Info("rtsp pull: transport switched", "url", cfg.redacted, "err", err)
	}
	c.OnDecodeError = func(err error) {
		withPub(func(p *rtspPublication) { p.warn("rtsp: undecodable packet", "err", err) })
	}
	if err := c.Start2(); err != nil {
		return false, err
	}
	defer c.Close()
	// Close the connection as soon as ctx is done, even during a request.
	stop := context.AfterFunc(ctx, func() { go c.Close() })
	defer stop()

	desc, _, err := c.Describe(cfg.u)
	if err != nil {
		return false, err
	}
	var tracks []*rtspTrack
	var medias []*description.Media
	for _, medi := range desc.Medias {
		t, err := newRTSPTrack(medi)
		if err != nil {
			cfg.log.Warn("rtsp pull: track left out", "url", cfg.redacted, "media", string(medi.Type), "err", err)
			continue
		}
		tracks = append(tracks, t)
		medias = append(medias, medi)
	}
	if len(tracks) == 0 {
		return false, fmt.Errorf("no track of a supported codec")
	}
	if err := c.SetupAll(desc.BaseURL, medias); err != nil {
		return false, err
	}

	info := PublishInfo{Name: p.Name, Proto: "rtsp-pull", Remote: cfg.u.Host}
	rp := newRTSPPublication(p.Sink, info, c, cfg.log, tracks, func() { cancel(errPublishRefused) })
	pubMu.Lock()
	pub = rp
	pubMu.Unlock()
	defer rp.close()
	rp.listen(func(medi *description.Media, f format.Format, cb func(*rtp.Packet)) {
		c.OnPacketRTP(medi, f, cb)
	})

	if p.Registry != nil {
		release := p.Registry.Claim(p.Name, Publisher{Proto: "rtsp-pull", Remote: cfg.u.Host, Kick: func() {
			rp.close()
			cancel(errNameTaken)
		}})
		defer release()
	}

	if _, err := c.Play(nil); err != nil {
		return false, err
	}
	cfg.log.Info("rtsp pull playing", "url", cfg.redacted, "tracks", codecNames(tracks))

	done := make(chan error, 1)
	go func() { done <- c.Wait() }()

	// An on-demand pull checks for viewers four times per IdleTimeout.
	var idleC <-chan time.Time
	if p.OnDemand {
		idle := time.NewTicker(max(cfg.idle/4, time.Millisecond))
		defer idle.Stop()
		idleC = idle.C
	}
	for {
		select {
		case err := <-done:
			return rp.published(), err
		case <-ctx.Done():
			return rp.published(), context.Cause(ctx)
		case <-idleC:
			if p.idle(cfg) {
				return rp.published(), errPullIdle
			}
		}
	}
}
