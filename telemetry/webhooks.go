package telemetry

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shopcast/shopcast/webhooks"
)

// WebhookStats gives the webhook deliveries' counters; webhooks.Service
// implements it.
type WebhookStats interface {
	Stats() webhooks.Stats
}

// webhookCollector reads the webhook counters at scrape time.
type webhookCollector struct {
	src                WebhookStats
	deliveries, outbox *prometheus.Desc
}

// NewWebhookCollector exports src's counters as
// shopcast_webhook_deliveries_total{outcome} and shopcast_webhook_outbox,
// for Metrics.Registry.
func NewWebhookCollector(src WebhookStats) prometheus.Collector {
	return &webhookCollector{
		src: src,
		deliveries: prometheus.NewDesc("shopcast_webhook_deliveries_total",
			"Webhook delivery outcomes: delivered (2xx), retried (an attempt failed, another follows), failed (given up after the last attempt), dropped (queue or outbox full).",
			[]string{"outcome"}, nil),
		outbox: prometheus.NewDesc("shopcast_webhook_outbox", "Webhook deliveries waiting in the outbox.", nil, nil),
	}
}

func (c *webhookCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.deliveries
	ch <- c.outbox
}

func (c *webhookCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.src.Stats()
	for _, o := range []struct {
		outcome string
		n       int64
	}{{"delivered", st.Delivered}, {"retried", st.Retried}, {"failed", st.Failed}, {"dropped", st.Dropped}} {
		ch <- prometheus.MustNewConstMetric(c.deliveries, prometheus.CounterValue, float64(o.n), o.outcome)
	}
	ch <- prometheus.MustNewConstMetric(c.outbox, prometheus.GaugeValue, float64(st.Depth))
}
