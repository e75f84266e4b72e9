// Package steering is HLS Content Steering for a stream served by several
// origins (RFC 8216bis 4.4.6.6 and Apple's "HLS Content Steering
// Specification"): each configured pathway is a base URL at which the same
// stream is served (a node fed by the same encoder, or a CDN in front of
// one). The multivariant playlist lists every variant once per pathway, and
// the steering manifest, /live/{name}/steering.json, ranks the pathways by
// health so that players move off an origin that died.
//
// Health comes from the cluster's view of a pathway's node when there is
// one, else from probing the pathway's /healthz every TTL/2. Nothing here
// runs on the live path: the multivariant rewrite reads a snapshot of the
// health, and the probes run on their own goroutine.
package steering

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Pathway is one way to the stream: an ID (the PATHWAY-ID of its
// variants), the base URL its variants' URIs are resolved on, and, in a
// cluster, the name of the node that serves it.
type Pathway struct {
	ID   string `json:"id"`
	URL  string `json:"url"`
	Node string `json:"node,omitempty"`
}

// Limits of the configuration.
const (
	// MaxPathways caps the pathways: every one repeats the whole ladder in
	// the multivariant playlist.
	MaxPathways = 16
	maxIDLen    = 64
)

// ValidatePathways checks a pathway list: IDs legal Pathway IDs and
// unique, URLs absolute http(s) without query or fragment.
func ValidatePathways(ps []Pathway) error {
	if len(ps) > MaxPathways {
		return fmt.Errorf("%d pathways, more than %d", len(ps), MaxPathways)
	}
	seen := map[string]bool{}
	for i, p := range ps {
		if err := checkID(p.ID); err != nil {
			return fmt.Errorf("pathway %d: id: %w", i, err)
		}
		if seen[p.ID] {
			return fmt.Errorf("pathway %d: id %q listed twice", i, p.ID)
		}
		seen[p.ID] = true
		u, err := url.Parse(p.URL)
		if err != nil {
			return fmt.Errorf("pathway %q: url: %w", p.ID, err)
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return fmt.Errorf("pathway %q: url %q: want http(s)://HOST[/PATH] without user, query or fragment", p.ID, p.URL)
		}
	}
	return nil
}

// errBadID is a Pathway ID with characters the specification forbids.
var errBadID = errors.New("want 1 to 64 of [a-zA-Z0-9._-]")

// checkID applies the specification's rule: a Pathway ID "MUST be a
// string of characters from the set [a..z], [A..Z], [0..9], '.', '-',
// and '_'".
func checkID(id string) error {
	if id == "" || len(id) > maxIDLen {
		return errBadID
	}
	for _, c := range []byte(id) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '-', c == '_':
		default:
			return errBadID
		}
	}
	return nil
}

// Config configures a Steering.
type Config struct {
	// Pathways are the ways to every stream, in the order of preference
	// among healthy ones. It is required (New with none is an error).
	Pathways []Pathway
	// TTL is the steering manifest's TTL: how often players reload it.
	// Whole seconds; it defaults to 10s.
	TTL time.Duration
	// ProbeTimeout bounds one /healthz probe of a pathway. It defaults to
	// 1s; it must be under TTL/2, the probe interval.
	ProbeTimeout time.Duration
	// NodeHealthy, when set, tells whether a cluster node is healthy, and
	// whether the cluster knows it at all; a pathway whose node it knows
	// takes its health from there instead of a probe. It defaults to nil:
	// every pathway is probed.
	NodeHealthy func(node string) (healthy, known bool)
	// Client makes the probes. It defaults to a client without keep-alive
	// reuse across pathways beyond net/http's defaults.
	Client *http.Client
	// CORSOrigin is the Access-Control-Allow-Origin of the steering
	// manifest, which players fetch from a pathway's host, often not the
	// page's. It defaults to "*".
	CORSOrigin string
	// Logger receives health changes. It defaults to discarding them.
	Logger *slog.Logger
}

// Defaults of the Config fields.
const (
	DefaultTTL          = 10 * time.Second
	DefaultProbeTimeout = time.Second
)

// Steering ranks the pathways and renders what players read. Build it
// with New, run its probes with Run.
type Steering struct {
	cfg Config
	log *slog.Logger

	mu     sync.Mutex
	probed map[string]bool // pathway ID -> last probe succeeded
}

// New checks cfg and returns a Steering whose pathways all count as
// healthy until a probe says otherwise.
func New(cfg Config) (*Steering, error) {
	if len(cfg.Pathways) == 0 {
		return nil, errors.New("steering: no pathways")
	}
	if err := ValidatePathways(cfg.Pathways); err != nil {
		return nil, fmt.Errorf("steering: %w", err)
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.TTL < time.Second || cfg.TTL%time.Second != 0 {
		return nil, fmt.Errorf("steering: TTL %v: want whole seconds", cfg.TTL)
	}
	if cfg.ProbeTimeout <= 0 {
		cfg.ProbeTimeout = DefaultProbeTimeout
	}
	if cfg.ProbeTimeout >= cfg.TTL/2 {
		return nil, fmt.Errorf("steering: probe timeout %v: want under TTL/2 (%v)", cfg.ProbeTimeout, cfg.TTL/2)
	}
	if cfg.CORSOrigin == "" {
		cfg.CORSOrigin = "*"
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	probed := make(map[string]bool, len(cfg.Pathways))
	for _, p := range cfg.Pathways {
		probed[p.ID] = true
	}
	return &Steering{cfg: cfg, log: log, probed: probed}, nil
}

// healthy reports a pathway's health: the cluster's view of its node when
// the cluster knows the node, else its last probe.
func (s *Steering) healthy(p Pathway) bool {
	if p.Node != "" && s.cfg.NodeHealthy != nil {
		if ok, known := s.cfg.NodeHealthy(p.Node); known {
			return ok
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.probed[p.ID]
}

// Priority returns the pathways in the order players should use them:
// the healthy ones in configured order, then the others, so that a
// player with nothing healthy left still has somewhere to try.
func (s *Steering) Priority() []Pathway {
	var good, bad []Pathway
	for _, p := range s.cfg.Pathways {
		if s.healthy(p) {
			good = append(good, p)
		} else {
			bad = append(bad, p)
		}
	}
	return append(good, bad...)
}

// manifestURL is the absolute URL of a stream's steering manifest on a
// pathway.
func manifestURL(p Pathway, stream string) string {
	return strings.TrimRight(p.URL, "/") + "/live/" + url.PathEscape(stream) + "/" + ManifestFile
}
