package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/shopcast/shopcast/cues"
)

// cuesMigrateCmd is the subcommand that moves a node's cue store into a
// cluster (docs/cluster.md, "Cues").
const cuesMigrateCmd = "cues-migrate"

// runCuesMigrate runs "shopcast cues-migrate": it reads the single-node cue
// store (the node stopped) and writes every cue into the cluster's bucket,
// then prints what it did. Running it again moves nothing.
func runCuesMigrate(ctx context.Context, args []string, out io.Writer, lookupEnv func(string) (string, bool)) error {
	fs := flag.NewFlagSet("shopcast "+cuesMigrateCmd, flag.ContinueOnError)
	fs.SetOutput(out)
	store := fs.String("cue-store", "", "the node's cue store file (its cue_store); the node must be stopped")
	urls := fs.String("nats", "", "the cluster's NATS URLs, comma-separated (nats://host:4222,...)")
	creds := fs.String("nats-creds", "", "a NATS credentials file; also $SHOPCAST_NATS_CREDS")
	replicas := fs.Int("replicas", 3, "replicas of the cue bucket if this run creates it: min(3, the cluster's size)")
	timeout := fs.Duration("timeout", 5*time.Second, "how long each JetStream request may take")
	fs.Usage = func() {
		fmt.Fprintf(out, "usage: shopcast %s -cue-store FILE -nats URLS [-nats-creds FILE] [-replicas N]\n\n", cuesMigrateCmd)
		fmt.Fprintln(out, "Moves every cue of a single node's store into a cluster's cue bucket, once: a cue")
		fmt.Fprintln(out, "the cluster has is left alone, so it is safe to run again. Stop the node first.")
		fmt.Fprintln(out)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if *creds == "" {
		*creds, _ = lookupEnv("SHOPCAST_NATS_CREDS")
	}
	switch {
	case *store == "":
		fmt.Fprintln(out, "shopcast cues-migrate: -cue-store is required")
		fs.Usage()
		return errUsage
	case *urls == "":
		fmt.Fprintln(out, "shopcast cues-migrate: -nats is required")
		fs.Usage()
		return errUsage
	case *replicas < 1 || *replicas > 5:
		fmt.Fprintln(out, "shopcast cues-migrate: -replicas must be 1 to 5")
		return errUsage
	}
	if _, err := os.Stat(*store); err != nil {
		return fmt.Errorf("cue store: %w", err)
	}
	from := &cues.Store{Path: *store}
	if err := from.Open(); err != nil {
		return fmt.Errorf("%w (is the node still running?)", err)
	}
	defer from.Close()

	opts := []nats.Option{nats.Name("shopcast cues-migrate"), nats.Timeout(*timeout)}
	if *creds != "" {
		opts = append(opts, nats.UserCredentials(*creds))
	}
	nc, err := nats.Connect(strings.TrimSpace(*urls), opts...)
	if err != nil {
		return fmt.Errorf("nats: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	to := &cues.ClusterStore{JetStream: js, Replicas: *replicas, OpTimeout: *timeout,
		Logger: slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	octx, cancel := context.WithTimeout(ctx, 10**timeout)
	defer cancel()
	if err := to.Open(octx); err != nil {
		return err
	}
	defer to.Close()
	rep, err := cues.Migrate(from, to)
	fmt.Fprintf(out, "cues-migrate %s: %s\n", *store, rep)
	for _, c := range rep.Conflicts {
		fmt.Fprintf(out, "conflict: %s differs in the cluster; left as the cluster has it\n", c)
	}
	return err
}
