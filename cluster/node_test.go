package cluster

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// syncBuffer is a log sink shared by goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// freePorts reserves n loopback ports and frees them for the servers.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ls []net.Listener
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		_ = l.Close()
	}
	return ports
}

// startCluster starts n embedded members with the same route list.
func startCluster(t *testing.T, n int, cred func(*Config), log *slog.Logger) []*Node {
	t.Helper()
	ports := freePorts(t, n)
	which := make([]int, n)
	for i := range which {
		which[i] = i
	}
	return startMembers(t, ports, which, cred, log)
}

// memberConfig is member i (n<i+1>) of a cluster on loopback ports.
func memberConfig(i int, ports []int, storeDir string) Config {
	var routes []string
	for _, p := range ports {
		routes = append(routes, "nats://127.0.0.1:"+strconv.Itoa(p))
	}
	return Config{
		Name:        "n" + strconv.Itoa(i+1),
		Listen:      "127.0.0.1:0",
		RouteListen: "127.0.0.1:" + strconv.Itoa(ports[i]),
		Routes:      routes,
		StoreDir:    storeDir,
	}
}

// startMembers starts the members which (indexes into ports) in this
// process and waits until their JetStream is ready.
func startMembers(t *testing.T, ports, which []int, cred func(*Config), log *slog.Logger) []*Node {
	t.Helper()
	var nodes []*Node
	for _, i := range which {
		cfg := memberConfig(i, ports, t.TempDir())
		cfg.Logger = log
		if cred != nil {
			cred(&cfg)
		}
		node := New(cfg)
		if err := node.Start(t.Context()); err != nil {
			t.Fatalf("node %d: %v", i+1, err)
		}
		t.Cleanup(node.Close)
		nodes = append(nodes, node)
	}
	for _, node := range nodes {
		select {
		case <-node.Ready():
		case <-time.After(60 * time.Second):
			t.Fatalf("%s: JetStream not ready", node.Name())
		}
	}
	return nodes
}

func TestThreeMembersReplicateAKeyValueBucket(t *testing.T) {
	const password = "pw-4f3e2d1c"
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	nodes := startCluster(t, 3, func(c *Config) { c.User, c.Password = "shop", password }, log)
	for _, n := range nodes {
		if n.Replicas() != 3 {
			t.Errorf("%s: replicas %d, want 3", n.Name(), n.Replicas())
		}
		if !n.Healthy() {
			t.Errorf("%s: not healthy", n.Name())
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	kv, err := nodes[0].JetStream().CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "t", Replicas: nodes[0].Replicas()})
	if err != nil {
		t.Fatal(err)
	}
	rev, err := kv.Create(ctx, "k", []byte("v1"))
	if err != nil {
		t.Fatal(err)
	}
	// Another member sees it, and a stale revision is refused there.
	kv3, err := nodes[2].JetStream().KeyValue(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	st, err := kv3.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.(*jetstream.KeyValueBucketStatus).StreamInfo().Config.Replicas != 3 {
		t.Errorf("bucket replicas %d", st.(*jetstream.KeyValueBucketStatus).StreamInfo().Config.Replicas)
	}
	if _, err := kv3.Update(ctx, "k", []byte("v2"), rev); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Update(ctx, "k", []byte("v3"), rev); !errors.Is(err, jetstream.ErrKeyExists) {
		t.Errorf("stale update: %v, want ErrKeyExists", err)
	}

	// Kill one member: two of three keep a quorum. When it led the
	// bucket's RAFT group, writes fail until the others elect a leader
	// (NATS: 4 to 9 s).
	nodes[0].Kill()
	t0 := time.Now()
	for {
		_, err := kv3.Put(ctx, "k2", []byte("x"))
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("put with two of three: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("first write with two of three members after %v", time.Since(t0).Round(time.Millisecond))
	if strings.Contains(logs.String(), password) {
		t.Errorf("the password is in the log:\n%s", logs.String())
	}
}

func TestUnauthenticatedClientRefused(t *testing.T) {
	nodes := startCluster(t, 1, func(c *Config) { c.Token = "tok-0123"; c.RouteListen = ""; c.Routes = nil }, slog.New(slog.DiscardHandler))
	bad := New(Config{Name: "outsider", NATSURL: nodes[0].ClientURL(), Token: "wrong", StartTimeout: time.Second})
	if err := bad.Start(t.Context()); err == nil {
		bad.Close()
		t.Fatal("a wrong token connected")
	} else if strings.Contains(err.Error(), "wrong") {
		t.Errorf("the error shows the token: %v", err)
	}
	good := New(Config{Name: "insider", NATSURL: nodes[0].ClientURL(), Token: "tok-0123"})
	if err := good.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	select {
	case <-good.Ready():
	case <-time.After(30 * time.Second):
		t.Fatal("external client: JetStream not ready")
	}
	if good.Replicas() != 1 {
		t.Errorf("replicas %d against one server, want 1", good.Replicas())
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no name", Config{StoreDir: "d", Listen: "127.0.0.1:0"}, "cluster_node"},
		{"dotted name", Config{Name: "a.b", StoreDir: "d", Listen: "127.0.0.1:0"}, "cluster_node"},
		{"no store", Config{Name: "a", Listen: "127.0.0.1:0"}, "cluster_store_dir"},
		{"bad route", Config{Name: "a", StoreDir: "d", Listen: "127.0.0.1:0", RouteListen: ":6222", Routes: []string{"http://x:1"}}, "cluster_routes"},
		{"routes without listen", Config{Name: "a", StoreDir: "d", Listen: "127.0.0.1:0", Routes: []string{"nats://x:1"}}, "cluster_route_listen"},
		{"token and user", Config{Name: "a", NATSURL: "nats://x:4222", Token: "t", User: "u", Password: "p"}, "cluster_token"},
		{"user without password", Config{Name: "a", NATSURL: "nats://x:4222", User: "u"}, "cluster_password"},
		{"bad url", Config{Name: "a", NATSURL: "http://u:secret@x"}, "cluster_nats_url"},
		{"bad listen", Config{Name: "a", StoreDir: "d", Listen: "nope"}, "cluster_nats_listen"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("the error shows a password: %v", err)
			}
		})
	}
}
