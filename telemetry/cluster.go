package telemetry

import "github.com/prometheus/client_golang/prometheus"

// ClusterStats are a cluster node's counters (package cluster's registry
// and proxy), read at each scrape.
type ClusterStats struct {
	Healthy                                bool
	StreamsOwned                           int
	Claims, Refusals, Renewals, Losses     uint64
	Provisional, Kept                      uint64
	Proxied, ProxyUnreachable, ProxyMoving uint64
}

// NewClusterCollector returns the collector of a cluster node's metrics;
// stats is called at each scrape. Every node exports its own: a dashboard
// sums them over instances.
func NewClusterCollector(stats func() ClusterStats) prometheus.Collector {
	return clusterCollector{stats}
}

type clusterCollector struct{ stats func() ClusterStats }

var (
	clusterHealthy = prometheus.NewDesc("shopcast_cluster_healthy",
		"1 while this node is connected to NATS and JetStream answers.", nil, nil)
	clusterOwned = prometheus.NewDesc("shopcast_cluster_streams_owned",
		"Streams whose lease this node holds.", nil, nil)
	clusterLeases = prometheus.NewDesc("shopcast_cluster_lease_events_total",
		"Stream registry events on this node: claim (lease won), refusal (a publisher refused: another node's kept the stream), renewal, loss (lease taken by another node or not renewed within its TTL), provisional (a claim accepted on the members' word while the registry could not be written), kept (a lease kept on the members' word through failed renewals).",
		[]string{"event"}, nil)
	clusterProxied = prometheus.NewDesc("shopcast_cluster_proxied_requests_total",
		"Requests for streams another node owns, by outcome: proxied (the owner answered), unreachable (503: the owner did not answer and no other node holds the stream), moving (503 while the stream changes node or no live owner is known).",
		[]string{"outcome"}, nil)
)

func (c clusterCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- clusterHealthy
	ch <- clusterOwned
	ch <- clusterLeases
	ch <- clusterProxied
}

func (c clusterCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	healthy := 0.0
	if s.Healthy {
		healthy = 1
	}
	ch <- prometheus.MustNewConstMetric(clusterHealthy, prometheus.GaugeValue, healthy)
	ch <- prometheus.MustNewConstMetric(clusterOwned, prometheus.GaugeValue, float64(s.StreamsOwned))
	for ev, v := range map[string]uint64{"claim": s.Claims, "refusal": s.Refusals, "renewal": s.Renewals, "loss": s.Losses,
		"provisional": s.Provisional, "kept": s.Kept} {
		ch <- prometheus.MustNewConstMetric(clusterLeases, prometheus.CounterValue, float64(v), ev)
	}
	for oc, v := range map[string]uint64{"proxied": s.Proxied, "unreachable": s.ProxyUnreachable, "moving": s.ProxyMoving} {
		ch <- prometheus.MustNewConstMetric(clusterProxied, prometheus.CounterValue, float64(v), oc)
	}
}
