package server_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/shopcast/shopcast/internal/server"
	"github.com/shopcast/shopcast/steering"
)

// TestSteeringClusterHealth: in cluster mode a pathway naming a node the
// cluster knows takes its health from the cluster (healthy while the
// node's heartbeat is fresh, whatever its probe says), and one naming a
// node the cluster does not know goes by its probe.
func TestSteeringClusterHealth(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String() // nobody answers there once closed
	ln.Close()
	live := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer live.Close()

	cfg := loopback(t)
	cfg.ClusterNode = "solo"
	cfg.ClusterNATSListen = "127.0.0.1:0"
	cfg.ClusterRouteListen = ""
	cfg.ClusterToken = "tok-1234"
	cfg.SteeringTTL, cfg.SteeringProbeTimeout = 2*time.Second, 500*time.Millisecond
	cfg.Pathways = []steering.Pathway{
		{ID: "c", URL: dead, Node: "ghost"}, // unknown to the cluster: its probe fails
		{ID: "a", URL: dead, Node: "solo"},  // this node: the cluster's view wins over the probe
		{ID: "b", URL: live.URL},            // no node: its probe succeeds
	}
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

	url := "http://" + srv.Addrs().HTTP.String() + "/live/shop/steering.json"
	deadline := time.Now().Add(30 * time.Second)
	var last []string
	for {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		var m steering.Manifest
		err = json.NewDecoder(resp.Body).Decode(&m)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		last = m.PathwayPriority
		if strings.Join(last, ",") == "a,b,c" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("PATHWAY-PRIORITY %v after 30s, want a,b,c", last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
