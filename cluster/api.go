package cluster

import (
	"encoding/json"
	"net/http"
	"time"
)

// API serves GET /api/v1/cluster: the members with their health and load,
// every stream's owner, and this node's counters. It is read-only, but it
// shows the nodes' internal URLs: the server mounts it behind the admin
// rule (docs/security.md).
type API struct {
	Registry *Registry
	// Proxy, when set, adds its counters.
	Proxy *Proxy
}

type apiNode struct {
	NodeInfo
	Healthy bool `json:"healthy"`
}

type apiStream struct {
	Stream        string    `json:"stream"`
	Node          string    `json:"node"`
	URL           string    `json:"url"`
	Live          bool      `json:"live"`
	Since         time.Time `json:"since"`
	Discontinuity int64     `json:"discontinuity"`
	Revision      uint64    `json:"revision"`
}

type apiView struct {
	Node     string        `json:"node"`
	Healthy  bool          `json:"healthy"`
	Replicas int           `json:"replicas"`
	Nodes    []apiNode     `json:"nodes"`
	Streams  []apiStream   `json:"streams"`
	Registry RegistryStats `json:"registry"`
	Proxy    *ProxyStats   `json:"proxy,omitempty"`
}

func (a *API) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	r := a.Registry
	v := apiView{
		Node: r.node.Name(), Healthy: r.node.Healthy(), Replicas: r.node.Replicas(),
		Nodes: []apiNode{}, Streams: []apiStream{}, Registry: r.Stats(),
	}
	for _, n := range r.Nodes() {
		// A heartbeat two renewals old is late: the node or its link is in
		// trouble, though its key has not expired yet.
		v.Nodes = append(v.Nodes, apiNode{NodeInfo: n, Healthy: time.Since(n.Seen) < 2*r.cfg.Renew+time.Second})
	}
	for _, o := range r.Owners() {
		v.Streams = append(v.Streams, apiStream{Stream: o.Stream, Node: o.Node, URL: o.URL, Live: o.Live,
			Since: o.Since, Discontinuity: o.Discontinuity, Revision: o.Revision})
	}
	if a.Proxy != nil {
		ps := a.Proxy.Stats()
		v.Proxy = &ps
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(v)
}
