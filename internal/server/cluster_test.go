package server_test

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/shopcast/shopcast/internal/server"
)

// TestClusterOfOne starts a server in cluster mode with its embedded NATS
// server and no peers: /readyz turns ready once JetStream answers, and the
// store lands next to the cue store.
func TestClusterOfOne(t *testing.T) {
	cfg := loopback(t)
	cfg.ClusterNode = "solo"
	cfg.ClusterNATSListen = "127.0.0.1:0"
	cfg.ClusterRouteListen = ""
	cfg.ClusterToken = "tok-1234"
	srv, err := server.New(cfg, discard())
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	node := srv.Cluster()
	if node == nil || node.Name() != "solo" || node.JetStream() == nil {
		t.Fatalf("node %v", node)
	}
	url := "http://" + srv.Addrs().HTTP.String() + "/readyz"
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz %d after 30s", resp.StatusCode)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !node.Healthy() || node.Replicas() != 1 {
		t.Errorf("healthy %v, replicas %d", node.Healthy(), node.Replicas())
	}
}

// TestSingleNodeHasNoCluster: the default runs no NATS.
func TestSingleNodeHasNoCluster(t *testing.T) {
	srv, err := server.New(loopback(t), discard())
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	defer func() { _ = srv.Run(ctx) }()
	if srv.Cluster() != nil {
		t.Error("a cluster node on a single server")
	}
}
