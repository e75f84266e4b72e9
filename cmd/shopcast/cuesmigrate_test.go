package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shopcast/shopcast/cues"
	"github.com/shopcast/shopcast/internal/natstest"
	"github.com/shopcast/shopcast/packager"
)

// TestCuesMigrate runs "shopcast cues-migrate" twice against a NATS server
// with JetStream: the first run moves the store's cues and says so, the
// second moves none; the bucket then holds each cue as the store had it.
func TestCuesMigrate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cues.db")
	store, err := cues.OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, id := range []string{"a", "b", "c"} {
		c, err := cues.DecodeCue([]byte(`{"v":1,"id":"` + id + `","type":"product","product":{"sku":"S","title":"T",` +
			`"price":{"amount":"1.00","currency":"EUR"},"image_url":"https://x.example/i.jpg","url":"https://x.example/p"},"duration_ms":1000}`))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.Reserve("shop", c, now); err != nil {
			t.Fatal(err)
		}
		if _, err := store.Place("shop", id, packager.EventTime{Media: time.Second, Wall: now}, now); err != nil {
			t.Fatal(err)
		}
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	srv := natstest.Start(t, 1)
	args := []string{"cues-migrate", "-cue-store", path, "-nats", srv.URL(0), "-replicas", "1"}
	noEnv := func(string) (string, bool) { return "", false }

	for run, want := range []string{"1 streams: 3 cues moved, 0 already in the cluster, 0 conflicts",
		"1 streams: 0 cues moved, 3 already in the cluster, 0 conflicts"} {
		var out bytes.Buffer
		if err := runWith(context.Background(), args, &out, noEnv, nil); err != nil {
			t.Fatalf("run %d: %v\n%s", run+1, err, &out)
		}
		if !strings.Contains(out.String(), want) {
			t.Fatalf("run %d printed %q, want %q", run+1, out.String(), want)
		}
	}

	cs := &cues.ClusterStore{JetStream: srv.JetStream(0)}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cs.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	rec, err := cs.Get("shop", "b")
	if err != nil || rec.Seq != 2 || rec.Media != time.Second || !rec.Start.Equal(now) {
		t.Fatalf("migrated record %+v %v", rec, err)
	}
}

func TestCuesMigrateUsage(t *testing.T) {
	noEnv := func(string) (string, bool) { return "", false }
	for _, args := range [][]string{
		{"cues-migrate"},
		{"cues-migrate", "-cue-store", "x.db"},
		{"cues-migrate", "-nats", "nats://127.0.0.1:1"},
	} {
		var out bytes.Buffer
		err := runWith(context.Background(), args, &out, noEnv, nil)
		if !errors.Is(err, errUsage) || !strings.Contains(out.String(), "is required") {
			t.Errorf("%v: %v %q", args, err, out.String())
		}
	}
	var out bytes.Buffer
	missing := filepath.Join(t.TempDir(), "none.db")
	err := runWith(context.Background(), []string{"cues-migrate", "-cue-store", missing, "-nats", "nats://127.0.0.1:1"}, &out, noEnv, nil)
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a missing store: %v", err)
	}
}
