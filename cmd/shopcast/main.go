// Command shopcast is a live-shopping LL-HLS media server: encoders such as
// OBS publish over RTMP, and viewers play low-latency HLS from its HTTP
// origin, directly or through a CDN.
//
// Run "shopcast -h" for the configuration keys.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/shopcast/shopcast/cues"
	"github.com/shopcast/shopcast/ingest"
	"github.com/shopcast/shopcast/origin"
	"github.com/shopcast/shopcast/packager"
	"github.com/shopcast/shopcast/telemetry"
	"github.com/shopcast/shopcast/web"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second signal kills at once
	}()
	err := run(ctx, os.Args[1:], os.Stderr)
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		os.Exit(2) // the flag package has printed the error and the usage
	default:
		fmt.Fprintln(os.Stderr, "shopcast:", err)
		os.Exit(1)
	}
}

// run starts shopcast with the command-line args (without the program
// name), logs to stderr, and shuts down gracefully when ctx ends.
func run(ctx context.Context, args []string, stderr io.Writer) error {
	return runWith(ctx, args, stderr, os.LookupEnv, nil)
}

// listening are the bound addresses, for tests that listen on port 0.
type listening struct {
	HTTP net.Addr
	RTMP net.Addr
	RTSP net.Addr
}

// runWith is run with the environment as lookupEnv, and ready called once
// every listener is bound.
func runWith(ctx context.Context, args []string, stderr io.Writer,
	lookupEnv func(string) (string, bool), ready func(listening)) error {
	cfg, err := loadConfig(args, lookupEnv, stderr)
	if err != nil {
		return err
	}
	if err := checkPublishNames(cfg.PublishKeys); err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	log.Info("starting shopcast", "config", cfg)

	// Started in pipeline order, closed in reverse: the packager, the
	// ingest that feeds it, the origin that reads it.
	// The cue store opens first and closes last: nothing acknowledged to a
	// producer is lost while the rest shuts down.
	store := &cues.Store{Path: cfg.CueStore, CommitDelay: cfg.CueCommitDelay}
	if err := store.Open(); err != nil {
		return fmt.Errorf("cue store: %w", err)
	}
	defer store.Close()
	readiness := telemetry.NewReady(telemetry.ReadyListeners, telemetry.ReadyCueStore)
	readiness.Set(telemetry.ReadyCueStore, true)
	defer readiness.Set(telemetry.ReadyCueStore, false) // before the store closes
	cueService := &cues.Service{Store: store, Logger: log}
	defer cueService.Close() // after the ingest and the packager, before the store
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

	manager := packager.New(packager.Config{
		OnStreamStart:      cueService.StreamStarted,
		OnData:             cueService.PublisherData,
		TargetDuration:     cfg.TargetDuration,
		PartTarget:         cfg.PartTarget,
		WindowSegments:     cfg.WindowSegments,
		GracePeriod:        cfg.GracePeriod,
		EndedLinger:        cfg.EndedLinger,
		MaxStreams:         cfg.MaxStreams,
		MaxBlockedRequests: cfg.MaxBlockedRequests,
	}, log)
	defer manager.Close()
	cueService.Timeline = manager
	metrics := &telemetry.Metrics{Packager: manager, Cues: store, MaxStreamLabels: cfg.MetricsMaxStreams, Logger: log}
	metrics.Start()
	cueAPI.Observer = metrics

	// One registry for every ingest protocol, so that a publisher coming
	// back over another protocol replaces its old session.
	reg := ingest.NewRegistry(log)
	rtmp := newRTMPServer(cfg, manager, reg, log)
	if err := rtmp.Start(); err != nil {
		return err
	}
	defer rtmp.Close()
	rtsp := newRTSPServer(cfg, manager, reg, log)
	if err := rtsp.Start(); err != nil {
		return err
	}
	defer rtsp.Close()

	// RFC 8216bis 6.2.5.2: a blocking request waits up to 3 target
	// durations; the write timeout and the shutdown wait must outlast it.
	blockingWait := 3*cfg.TargetDuration + time.Second
	org := &origin.Server{
		Observer:          metrics,
		Address:           cfg.HTTP,
		Source:            manager,
		Logger:            log,
		CORSOrigin:        cfg.CORSOrigin,
		TLSCert:           cfg.TLSCert,
		TLSKey:            cfg.TLSKey,
		ReadHeaderTimeout: cfg.HTTPReadHeaderTimeout,
		ReadTimeout:       cfg.HTTPReadTimeout,
		IdleTimeout:       cfg.HTTPIdleTimeout,
		MaxHeaderBytes:    cfg.HTTPMaxHeaderBytes,
		WriteTimeout:      max(cfg.HTTPWriteTimeout, blockingWait+10*time.Second),
	}
	if cfg.PlaySecret != "" {
		org.PlayAuth = &origin.PlayAuth{Secret: []byte(cfg.PlaySecret), TTL: cfg.PlayTokenTTL}
	}
	cueAPI.Start()
	org.Handle("/api/v1/", cueAPI)
	org.Handle("GET /readyz", readiness)
	if cfg.MetricsAddr == "" {
		org.Handle("GET /metrics", metrics.Handler())
	} else {
		ms := &telemetry.Server{Address: cfg.MetricsAddr, Metrics: metrics, Ready: readiness, Logger: log}
		if err := ms.Start(); err != nil {
			return err
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = ms.Shutdown(sctx)
		}()
	}
	org.Handle("/sdk/", http.FileServerFS(cues.SDK))
	web.New(web.Config{Streams: manager.StreamNames, Logger: log}).Register(org.Handle)
	if err := org.Start(); err != nil {
		return err
	}
	readiness.Set(telemetry.ReadyListeners, true)

	httpScheme := "http"
	if cfg.TLSCert != "" {
		httpScheme = "https"
	}
	log.Info("shopcast ready",
		"publish", "rtmp://"+displayAddr(rtmp.Addr())+"/live/{stream key}",
		"play", httpScheme+"://"+displayAddr(org.Addr())+"/live/{name}/index.m3u8")
	if ready != nil {
		ready(listening{HTTP: org.Addr(), RTMP: rtmp.Addr(), RTSP: rtsp.Addr()})
	}

	<-ctx.Done()
	// Load balancers stop sending traffic while requests drain.
	readiness.Set(telemetry.ReadyListeners, false)
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), max(cfg.ShutdownTimeout, blockingWait))
	defer cancel()
	if err := org.Shutdown(sctx); err != nil {
		log.Warn("HTTP requests cut short by shutdown", "err", err)
	}
	return nil // the deferred closes end the publishers, then the streams
}

// newLogger returns the logger the configuration asks for.
func newLogger(cfg Config, w io.Writer) *slog.Logger {
	level, _ := parseLevel(cfg.LogLevel) // validated by loadConfig
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
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
