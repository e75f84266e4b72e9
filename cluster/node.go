// Package cluster joins shopcast nodes into one cluster on NATS JetStream,
// so that any node serves any stream and a node that dies loses its
// streams to the others within seconds. The single-node server does not
// import it at all: cluster mode is off unless cluster_node is set.
//
// A Node is this process's place in the cluster: a connection to NATS and
// its JetStream context. The NATS server is either embedded in this
// process (Config.NATSURL empty: a nats-server with JetStream on, routed to
// the other nodes' embedded servers, its store in Config.StoreDir) or an
// existing NATS cluster reached at Config.NATSURL. Everything the cluster
// keeps (the stream registry, and whatever other packages replicate) is in
// JetStream, RAFT-replicated over Replicas servers; nothing is kept only in
// the memory of one node.
//
// Use:
//
//	n := cluster.New(cluster.Config{Name: "n1", Listen: "127.0.0.1:4222",
//		RouteListen: ":6222", Routes: []string{"nats://n2:6222", "nats://n3:6222"},
//		StoreDir: "/var/lib/shopcast/nats", Logger: log})
//	if err := n.Start(ctx); err != nil { ... } // the NATS server and the connection
//	defer n.Close()
//	<-n.Ready()                              // JetStream answers (a quorum is up)
//	kv, err := n.JetStream().CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
//		Bucket: "x", Replicas: n.Replicas()})
//
// Start returns once this node's NATS server accepts connections and the
// client is connected; it does not wait for the other members, so nodes
// can start in any order. Ready is closed once JetStream answers, which in
// a cluster needs a quorum (two of three members) and an elected meta
// leader. Healthy reports whether that is still true. JetStream and Conn
// are valid from Start to Close; the connection reconnects by itself
// (forever) and JetStream calls fail with nats errors while it is away,
// which callers turn into 503s. Close drains the connection and shuts the
// embedded server down; Kill (for failure tests) stops both at once,
// without a drain, as a crash would.
//
// Credentials (User/Password or Token) guard the embedded server's client
// port and routes and are presented by the connection; they are never
// logged, and URLs are logged without their user information.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ClusterName is the NATS cluster name of embedded servers; every member
// must use the same.
const ClusterName = "shopcast"

// routeUser is the route user name when only a token is configured: NATS
// routes authenticate with a user and a password, not a token.
const routeUser = "shopcast"

// routeMaxPingsOut is how many route pings may go unanswered before NATS
// drops the route: three, so that one slow answer on a loaded machine
// does not cut a live member off.
const routeMaxPingsOut = 3

// Config is one node's cluster settings.
type Config struct {
	// Name is this node's name in the cluster, unique among its members
	// (the NATS server name, the owner in the stream registry). Required.
	Name string
	// NATSURL is an existing NATS cluster to connect to (comma-separated
	// URLs). Empty (the default) embeds a NATS server in this process.
	NATSURL string
	// Listen is the embedded server's client listen address; port 0 picks
	// a free port. It defaults to "127.0.0.1:4222".
	Listen string
	// RouteListen is the embedded server's cluster (route) listen address,
	// which the other members' Routes name; port 0 picks a free port.
	// Empty runs a cluster of one, without routes. It defaults to "".
	RouteListen string
	// Routes are the route URLs (nats://HOST:PORT) of the other members;
	// this node's own URL may be among them (NATS skips it), so every
	// member can have the same list. It defaults to none.
	Routes []string
	// StoreDir is the embedded server's JetStream store. Required when
	// embedded.
	StoreDir string
	// User and Password, or Token, are the NATS credentials: required of
	// clients and routes by the embedded server, presented to NATSURL.
	// They default to none (no authentication).
	User, Password string
	Token          string
	// Replicas is the replica count of what the cluster keeps. 0 (the
	// default) is min(3, members): members are the distinct Routes plus
	// this node when embedded, the servers NATS announces when external.
	Replicas int
	// RoutePing is the embedded server's ping interval on its routes; a
	// member whose routes stop answering (host down, network cut, without
	// a TCP reset) is dropped after routeMaxPingsOut unanswered pings.
	// It defaults to 2s (NATS's own default is 2m).
	RoutePing time.Duration
	// StartTimeout bounds waiting for the embedded server to accept
	// connections and for the first connection. It defaults to 10s.
	StartTimeout time.Duration
	// Logger receives the node's lines and the embedded server's notices,
	// warnings and errors. It defaults to slog.Default().
	Logger *slog.Logger
}

// ErrNotStarted is returned by calls that need Start to have succeeded.
var ErrNotStarted = errors.New("cluster node not started")

// Node is this process's member of the cluster. See the package comment
// for its life cycle.
type Node struct {
	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	srv      *natsserver.Server // nil when external
	nc       *nats.Conn
	js       jetstream.JetStream
	replicas int
	cancel   context.CancelFunc
	done     chan struct{} // the readiness loop ended

	ready     chan struct{}
	readyOnce sync.Once
}

// New returns a node that is not started; cfg is checked by Start.
func New(cfg Config) *Node {
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:4222"
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 10 * time.Second
	}
	if cfg.RoutePing <= 0 {
		cfg.RoutePing = 2 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Node{cfg: cfg, log: log.With("node", cfg.Name), ready: make(chan struct{})}
}

// Name is this node's name in the cluster.
func (n *Node) Name() string { return n.cfg.Name }

// Ready is closed once JetStream answers on this node (after Start, once a
// quorum of the cluster is up). It stays closed; see Healthy for now.
func (n *Node) Ready() <-chan struct{} { return n.ready }

// Healthy reports whether the node is connected to NATS and JetStream has
// answered since Start.
func (n *Node) Healthy() bool {
	n.mu.Lock()
	nc := n.nc
	n.mu.Unlock()
	select {
	case <-n.ready:
	default:
		return false
	}
	return nc != nil && nc.IsConnected()
}

// JetStream is the node's JetStream context; nil before Start.
func (n *Node) JetStream() jetstream.JetStream {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.js
}

// Conn is the node's NATS connection; nil before Start.
func (n *Node) Conn() *nats.Conn {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.nc
}

// Replicas is the replica count for what the cluster keeps: Config.Replicas
// or min(3, members). It is known after Start.
func (n *Node) Replicas() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.replicas
}

// ClientURL is the embedded server's client URL (nats://HOST:PORT, with
// the bound port), for tools and for tests that listen on port 0; "" when
// external or before Start.
func (n *Node) ClientURL() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.srv == nil {
		return ""
	}
	return n.srv.ClientURL()
}

// RouteURL is the embedded server's route URL (nats://HOST:PORT, with the
// bound port) that the other members list in Routes; "" without routes.
func (n *Node) RouteURL() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.srv == nil {
		return ""
	}
	a := n.srv.ClusterAddr()
	if a == nil {
		return ""
	}
	host := a.IP.String()
	if a.IP == nil || a.IP.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "nats://" + net.JoinHostPort(host, strconv.Itoa(a.Port))
}

// Validate checks cfg, naming each bad field; its errors never show a
// credential.
func (c *Config) Validate() error {
	var errs []error
	if c.Name == "" {
		errs = append(errs, errors.New("cluster_node: empty"))
	} else if strings.ContainsAny(c.Name, " \t\r\n.*>") {
		errs = append(errs, fmt.Errorf("cluster_node: %q holds a space, '.', '*' or '>'", c.Name))
	}
	if c.Token != "" && (c.User != "" || c.Password != "") {
		errs = append(errs, errors.New("cluster_token: set a token or cluster_user and cluster_password, not both"))
	}
	if (c.User == "") != (c.Password == "") {
		errs = append(errs, errors.New("cluster_user and cluster_password: set both or neither"))
	}
	if c.Replicas < 0 {
		errs = append(errs, fmt.Errorf("cluster_replicas: %d is negative", c.Replicas))
	}
	if c.NATSURL != "" {
		for u := range strings.SplitSeq(c.NATSURL, ",") {
			if _, err := parseNATSURL(strings.TrimSpace(u)); err != nil {
				errs = append(errs, fmt.Errorf("cluster_nats_url: %w", err))
			}
		}
		return errors.Join(errs...)
	}
	if c.StoreDir == "" {
		errs = append(errs, errors.New("cluster_store_dir: empty"))
	}
	if _, _, err := splitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("cluster_nats_listen: %w", err))
	}
	if c.RouteListen != "" {
		if _, _, err := splitHostPort(c.RouteListen); err != nil {
			errs = append(errs, fmt.Errorf("cluster_route_listen: %w", err))
		}
	} else if len(c.Routes) > 0 {
		errs = append(errs, errors.New("cluster_routes: set, but cluster_route_listen is empty"))
	}
	for _, r := range c.Routes {
		if _, err := parseNATSURL(r); err != nil {
			errs = append(errs, fmt.Errorf("cluster_routes: %w", err))
		}
	}
	return errors.Join(errs...)
}

// parseNATSURL parses a nats:// URL; its errors show it without a password.
func parseNATSURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("a URL does not parse")
	}
	if u.Scheme != "nats" && u.Scheme != "tls" {
		return nil, fmt.Errorf("%s is not a nats:// or tls:// URL", u.Redacted())
	}
	if u.Host == "" {
		return nil, fmt.Errorf("%s has no host", u.Redacted())
	}
	return u, nil
}

// splitHostPort splits a listen address; port 0 becomes NATS's "any port".
func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("%q is not HOST:PORT", addr)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("%q: bad port", addr)
	}
	if port == 0 {
		port = natsserver.RANDOM_PORT
	}
	if host == "" {
		host = "0.0.0.0"
	}
	return host, port, nil
}

// Start starts the embedded NATS server (unless NATSURL is set) and
// connects to it, then waits in the background for JetStream (see Ready).
// ctx bounds the start only. On error nothing is left running.
func (n *Node) Start(ctx context.Context) error {
	if err := n.cfg.Validate(); err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.nc != nil {
		return errors.New("cluster node already started")
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.StartTimeout)
	defer cancel()

	opts := []nats.Option{
		nats.Name("shopcast " + n.cfg.Name),
		// A node outlives any NATS outage: it keeps trying, and callers
		// answer 503 meanwhile.
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			n.log.Warn("cluster: NATS connection lost", "err", err)
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			n.log.Info("cluster: NATS connection back", "url", redact(c.ConnectedUrl()))
		}),
	}
	switch {
	case n.cfg.Token != "":
		opts = append(opts, nats.Token(n.cfg.Token))
	case n.cfg.User != "":
		opts = append(opts, nats.UserInfo(n.cfg.User, n.cfg.Password))
	}

	members := 1
	var nc *nats.Conn
	if n.cfg.NATSURL == "" {
		srv, err := n.startServer(ctx)
		if err != nil {
			return err
		}
		nc, err = nats.Connect("", append(opts, nats.InProcessServer(srv))...)
		if err != nil {
			srv.Shutdown()
			return fmt.Errorf("cluster: connect to the embedded NATS server: %w", err)
		}
		n.srv = srv
		members = len(distinct(n.cfg.Routes)) + 1
		n.log.Info("cluster: embedded NATS server started", "client", srv.ClientURL(),
			"routes", len(n.cfg.Routes), "store", n.cfg.StoreDir)
	} else {
		var err error
		nc, err = connectExternal(ctx, n.cfg.NATSURL, opts)
		if err != nil {
			return err
		}
		members = len(nc.Servers())
		n.log.Info("cluster: connected to NATS", "url", redact(nc.ConnectedUrl()), "servers", members)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		n.shutdownServer()
		return fmt.Errorf("cluster: jetstream: %w", err)
	}
	n.nc, n.js = nc, js
	n.replicas = n.cfg.Replicas
	if n.replicas == 0 {
		n.replicas = max(1, min(3, members))
	}
	lctx, lcancel := context.WithCancel(context.Background())
	n.cancel, n.done = lcancel, make(chan struct{})
	go n.waitJetStream(lctx, js)
	return nil
}

// startServer starts the embedded NATS server and waits until it accepts
// connections.
func (n *Node) startServer(ctx context.Context) (*natsserver.Server, error) {
	host, port, _ := splitHostPort(n.cfg.Listen) // checked by Validate
	o := &natsserver.Options{
		ServerName: n.cfg.Name,
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   n.cfg.StoreDir,
		NoSigs:     true, // the shopcast process owns its signals
		// No HTTP monitoring port, no leaf nodes, no gateways: nothing
		// listens that the configuration does not name.
		HTTPPort: 0,
	}
	routeUserName, routePass := n.routeCredentials()
	switch {
	case n.cfg.Token != "":
		o.Authorization = n.cfg.Token
	case n.cfg.User != "":
		o.Username, o.Password = n.cfg.User, n.cfg.Password
	}
	if n.cfg.RouteListen != "" {
		rhost, rport, _ := splitHostPort(n.cfg.RouteListen)
		o.Cluster = natsserver.ClusterOpts{
			Name:     ClusterName,
			Host:     rhost,
			Port:     rport,
			Username: routeUserName,
			Password: routePass,
			// Members that come up later are retried for ever.
			ConnectRetries: -1,
			PingInterval:   n.cfg.RoutePing,
			MaxPingsOut:    routeMaxPingsOut,
		}
		for _, r := range distinct(n.cfg.Routes) {
			u, _ := parseNATSURL(r) // checked by Validate
			if u.User == nil && routeUserName != "" {
				u.User = url.UserPassword(routeUserName, routePass)
			}
			o.Routes = append(o.Routes, u)
		}
	}
	srv, err := natsserver.NewServer(o)
	if err != nil {
		return nil, fmt.Errorf("cluster: NATS server: %w", err)
	}
	srv.SetLogger(natsLogger{n.log}, false, false)
	go srv.Start()
	deadline, _ := ctx.Deadline()
	if !srv.ReadyForConnections(time.Until(deadline)) {
		srv.Shutdown()
		return nil, fmt.Errorf("cluster: the NATS server on %s did not start within %v (port in use, or store %s not writable?)",
			n.cfg.Listen, n.cfg.StartTimeout, n.cfg.StoreDir)
	}
	return srv, nil
}

// routeCredentials are the route user and password: the client credentials,
// or routeUser and the token.
func (n *Node) routeCredentials() (string, string) {
	switch {
	case n.cfg.Token != "":
		return routeUser, n.cfg.Token
	case n.cfg.User != "":
		return n.cfg.User, n.cfg.Password
	}
	return "", ""
}

// connectExternal connects to an existing NATS cluster, retrying until ctx
// ends.
func connectExternal(ctx context.Context, urls string, opts []nats.Option) (*nats.Conn, error) {
	var last error
	for {
		nc, err := nats.Connect(urls, opts...)
		if err == nil {
			return nc, nil
		}
		last = err
		select {
		case <-ctx.Done():
			// err may quote the URL; say which without its password.
			return nil, fmt.Errorf("cluster: connect to NATS at %s: %w", redactList(urls), last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// waitJetStream closes Ready once JetStream answers.
func (n *Node) waitJetStream(ctx context.Context, js jetstream.JetStream) {
	defer close(n.done)
	t0 := time.Now()
	logged := false
	for {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := js.AccountInfo(actx)
		cancel()
		if err == nil {
			n.readyOnce.Do(func() { close(n.ready) })
			n.log.Info("cluster: JetStream ready", "after", time.Since(t0).Round(time.Millisecond), "replicas", n.Replicas())
			return
		}
		if !logged && time.Since(t0) > 10*time.Second {
			n.log.Warn("cluster: JetStream not ready yet (waiting for a quorum of members)", "err", err)
			logged = true
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Close drains the connection and shuts the embedded server down.
func (n *Node) Close() { n.stop(true) }

// Kill stops the connection and the embedded server at once, without a
// drain: what the other members see of a crash, for failure tests.
func (n *Node) Kill() { n.stop(false) }

func (n *Node) stop(drain bool) {
	n.mu.Lock()
	nc, cancel, done := n.nc, n.cancel, n.done
	n.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	if nc != nil {
		if drain {
			_ = nc.Drain()
			// Drain returns at once; wait for it (bounded by its own
			// timeout) so the server does not shut down under it.
			for deadline := time.Now().Add(5 * time.Second); !nc.IsClosed() && time.Now().Before(deadline); {
				time.Sleep(10 * time.Millisecond)
			}
		}
		nc.Close()
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.shutdownServer()
}

// shutdownServer stops the embedded server; n.mu is held.
func (n *Node) shutdownServer() {
	if n.srv != nil {
		n.srv.Shutdown()
		n.srv.WaitForShutdown()
	}
}

// distinct returns urls without repeats, in order.
func distinct(urls []string) []string {
	var out []string
	for _, u := range urls {
		u = strings.TrimSpace(u)
		if u != "" && !slices.Contains(out, u) {
			out = append(out, u)
		}
	}
	return out
}

// redact is a URL without its user information.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User = nil
	return u.String()
}

// redactList is a comma-separated URL list without user information.
func redactList(raw string) string {
	parts := strings.Split(raw, ",")
	for i, p := range parts {
		parts[i] = redact(strings.TrimSpace(p))
	}
	return strings.Join(parts, ",")
}

// natsLogger passes the embedded server's lines to slog. Its debug and
// trace lines are off (SetLogger's flags).
type natsLogger struct{ log *slog.Logger }

func (l natsLogger) Noticef(format string, v ...any) {
	l.log.Debug("nats: " + fmt.Sprintf(format, v...))
}
func (l natsLogger) Warnf(format string, v ...any) { l.log.Warn("nats: " + fmt.Sprintf(format, v...)) }

// Fatalf is an error here: the embedded server must not end the process.
func (l natsLogger) Fatalf(format string, v ...any) {
	l.log.Error("nats: " + fmt.Sprintf(format, v...))
}
func (l natsLogger) Errorf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	if strings.Contains(msg, "trying to connect to route") {
		// A member not up yet, or down: NATS retries, and the cluster's
		// health says what matters.
		l.log.Debug("nats: " + msg)
		return
	}
	l.log.Error("nats: " + msg)
}
func (l natsLogger) Debugf(format string, v ...any) {}
func (l natsLogger) Tracef(format string, v ...any) {}
