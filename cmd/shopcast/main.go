// Command shopcast is a live-shopping LL-HLS media server: encoders such as
// OBS publish over RTMP or RTSP, and viewers play low-latency HLS from its
// HTTP origin, directly or through a CDN.
//
// Run "shopcast -h" for the configuration keys. The command only loads the
// configuration (config.go); internal/server wires the server.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/shopcast/shopcast/internal/server"
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

// runWith is run with the environment as lookupEnv, and ready called once
// every listener is bound.
func runWith(ctx context.Context, args []string, stderr io.Writer,
	lookupEnv func(string) (string, bool), ready func(server.Addrs)) error {
	if len(args) > 0 && args[0] == cuesMigrateCmd {
		return runCuesMigrate(ctx, args[1:], stderr, lookupEnv)
	}
	cfg, err := loadConfig(args, lookupEnv, stderr)
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	log.Info("starting shopcast", "config", cfg)
	srv, err := server.New(cfg.Config, log)
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		return err
	}
	if ready != nil {
		ready(srv.Addrs())
	}
	return srv.Run(ctx)
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
