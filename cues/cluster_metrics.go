package cues

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ClusterMetrics is a ClusterObserver that exports Prometheus metrics:
//
//	shopcast_cue_propagation_seconds          histogram: a cue accepted by
//	                                          one node -> placed by the owner
//	shopcast_cue_cluster_store_errors_total   counter by op (read, write, watch)
//
// Neither has a stream label: the histogram is the cluster's health, and
// streams are unbounded. Build it with NewClusterMetrics and register it.
type ClusterMetrics struct {
	lag    prometheus.Histogram
	errors *prometheus.CounterVec
}

// NewClusterMetrics returns the metrics, not yet registered.
func NewClusterMetrics() *ClusterMetrics {
	m := &ClusterMetrics{
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "shopcast_cue_propagation_seconds",
			Help: "From a cue's acceptance by a node that does not own its stream to its placement by the owner (includes the wait of a cue queued while the stream had no owner).",
			// Loopback figures are a few ms; a queued cue waits for a
			// publisher to come back, seconds to minutes.
			Buckets: []float64{.001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2, 5, 10, 30, 60, 300},
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shopcast_cue_cluster_store_errors_total",
			Help: "JetStream requests of the cluster cue store that failed, by op (read, write, watch).",
		}, []string{"op"}),
	}
	for _, op := range []string{"read", "write", "watch"} {
		m.errors.WithLabelValues(op) // present at 0 from the start
	}
	return m
}

// Register registers the metrics with reg.
func (m *ClusterMetrics) Register(reg prometheus.Registerer) error {
	if err := reg.Register(m.lag); err != nil {
		return err
	}
	return reg.Register(m.errors)
}

// CuePropagated implements ClusterObserver.
func (m *ClusterMetrics) CuePropagated(_ string, lag time.Duration) {
	m.lag.Observe(max(lag, 0).Seconds())
}

// ClusterStoreFailed implements ClusterObserver.
func (m *ClusterMetrics) ClusterStoreFailed(op string) { m.errors.WithLabelValues(op).Inc() }
