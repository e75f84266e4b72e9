// Package natstest runs NATS servers with JetStream in the test process:
// one, or a cluster of several on loopback routes, each with its own store
// directory, that a test can stop and start again on the same ports and
// store to see what the cluster does without some of its members.
package natstest

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Cluster is n NATS servers with JetStream, routed to each other when n > 1.
type Cluster struct {
	t       testing.TB
	opts    []*server.Options
	servers []*server.Server
}

// Start starts n servers and waits until JetStream answers on each (the
// cluster has elected its meta leader). They stop when the test ends.
func Start(t testing.TB, n int) *Cluster {
	t.Helper()
	c := &Cluster{t: t, servers: make([]*server.Server, n)}
	ports := make([]int, 2*n)
	for i := range ports {
		ports[i] = freePort(t)
	}
	for i := range n {
		o := &server.Options{
			ServerName: fmt.Sprintf("n%d", i+1),
			Host:       "127.0.0.1",
			Port:       ports[2*i],
			JetStream:  true,
			StoreDir:   t.TempDir(),
			NoLog:      true,
			NoSigs:     true,
		}
		if n > 1 {
			o.Cluster = server.ClusterOpts{Name: "shopcast-test", Host: "127.0.0.1", Port: ports[2*i+1]}
			for j := range n {
				if j != i {
					o.Routes = append(o.Routes, server.RoutesFromStr(fmt.Sprintf("nats-route://127.0.0.1:%d", ports[2*j+1]))...)
				}
			}
		}
		c.opts = append(c.opts, o)
	}
	for i := range n {
		c.Restart(i)
	}
	t.Cleanup(func() {
		for i := range c.servers {
			c.Kill(i)
		}
	})
	for i := range n {
		c.WaitJetStream(i)
	}
	c.waitPeers()
	return c
}

// waitPeers waits until the cluster can place a stream on every member:
// JetStream answers before the meta leader knows all its peers.
func (c *Cluster) waitPeers() {
	c.t.Helper()
	if c.Size() == 1 {
		return
	}
	nc, err := nats.Connect(c.URL(0))
	if err != nil {
		c.t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		c.t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "natstest_peers", Replicas: c.Size(), Storage: jetstream.MemoryStorage})
		if err == nil {
			err = js.DeleteStream(ctx, "natstest_peers")
		}
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("JetStream cluster of %d: %v", c.Size(), err)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition with a deadline
	}
}

// portFree reports whether port can be listened on now.
func portFree(port int) bool {
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Size is the number of servers.
func (c *Cluster) Size() int { return len(c.opts) }

// Name is the server name of member i ("n1" for 0).
func (c *Cluster) Name(i int) string { return c.opts[i].ServerName }

// URL is member i's client URL.
func (c *Cluster) URL(i int) string { return fmt.Sprintf("nats://127.0.0.1:%d", c.opts[i].Port) }

// URLs is every member's client URL, member i first, comma-separated as
// nats.Connect takes them.
func (c *Cluster) URLs(i int) string {
	urls := []string{c.URL(i)}
	for j := range c.opts {
		if j != i {
			urls = append(urls, c.URL(j))
		}
	}
	return strings.Join(urls, ",")
}

// Kill stops member i (its store stays for Restart).
func (c *Cluster) Kill(i int) {
	if s := c.servers[i]; s != nil {
		s.Shutdown()
		s.WaitForShutdown()
		c.servers[i] = nil
	}
}

// Restart starts member i again, on its ports and its store.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	if c.servers[i] != nil {
		return
	}
	// A port freed by Kill may have been taken meanwhile (by another test
	// binary running in parallel): the member then comes back on a fresh
	// one, and its peers still get a route to it, as it dials them.
	if !portFree(c.opts[i].Port) {
		c.opts[i].Port = freePort(c.t)
	}
	if p := c.opts[i].Cluster.Port; p != 0 && !portFree(p) {
		c.opts[i].Cluster.Port = freePort(c.t)
	}
	o := *c.opts[i]
	s, err := server.NewServer(&o)
	if err != nil {
		c.t.Fatalf("nats server %s: %v", o.ServerName, err)
	}
	if os.Getenv("NATSTEST_LOG") != "" {
		o.NoLog = false
		s.ConfigureLogger()
	}
	go s.Start()
	// Its JetStream store is restored before it listens: on a loaded
	// machine that can take a while.
	if !s.ReadyForConnections(60 * time.Second) {
		c.t.Fatalf("nats server %s not listening on ports %d and %d within 60s", o.ServerName, o.Port, o.Cluster.Port)
	}
	c.servers[i] = s
}

// Connect connects to member i first, to the others when it is down, and
// reconnects for ever. The connection closes when the test ends.
func (c *Cluster) Connect(i int) *nats.Conn {
	c.t.Helper()
	nc, err := nats.Connect(c.URLs(i), nats.DontRandomize(), nats.MaxReconnects(-1),
		nats.ReconnectWait(50*time.Millisecond), nats.RetryOnFailedConnect(true))
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(nc.Close)
	return nc
}

// JetStream is a JetStream context on Connect(i).
func (c *Cluster) JetStream(i int) jetstream.JetStream {
	c.t.Helper()
	js, err := jetstream.New(c.Connect(i))
	if err != nil {
		c.t.Fatal(err)
	}
	return js
}

// WaitJetStream waits until JetStream answers through member i.
func (c *Cluster) WaitJetStream(i int) {
	c.t.Helper()
	nc, err := nats.Connect(c.URL(i))
	if err != nil {
		c.t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		c.t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := js.AccountInfo(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("JetStream through %s: %v", c.Name(i), err)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition with a deadline
	}
}

// StreamLeader is the name of the member that leads stream's RAFT group.
func (c *Cluster) StreamLeader(js jetstream.JetStream, stream string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, stream)
	if err != nil {
		return "", err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return "", err
	}
	if info.Cluster == nil {
		return "", fmt.Errorf("stream %s: no cluster info", stream)
	}
	return info.Cluster.Leader, nil
}
