package telemetry

import (
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shopcast/shopcast/audience"
)

// AudienceStats gives the audience's counters; audience.Audience
// implements it.
type AudienceStats interface {
	Stats() audience.Stats
}

// audienceCollector reads the audience's counters at scrape time. The
// funnel per product is not here: its ids are unbounded, so it lives in the
// studio's API.
type audienceCollector struct {
	src                        AudienceStats
	maxStreams                 int
	accepted, refused, viewers *prometheus.Desc
	tracked                    *prometheus.Desc
}

// NewAudienceCollector returns the collector of the signal metrics:
// shopcast_signals_accepted_total{kind}, shopcast_signals_refused_total
// {kind,reason}, shopcast_audience_viewers{stream} (the first maxStreams
// streams by name get their own label, the others are summed as
// OtherStream) and shopcast_audience_tracked_viewers.
func NewAudienceCollector(src AudienceStats, maxStreams int) prometheus.Collector {
	if maxStreams <= 0 {
		maxStreams = defaultMaxStreamLabels
	}
	return &audienceCollector{
		src:        src,
		maxStreams: maxStreams,
		accepted:   prometheus.NewDesc("shopcast_signals_accepted_total", "Viewer signals counted, by kind (heartbeat, impression, click, reaction, vote).", []string{"kind"}, nil),
		refused:    prometheus.NewDesc("shopcast_signals_refused_total", "Viewer signals refused, by kind (unknown: refused before the body was read) and reason.", []string{"kind", "reason"}, nil),
		viewers:    prometheus.NewDesc("shopcast_audience_viewers", "Viewers now, from their pages' heartbeats (counts viewers behind a CDN too).", []string{"stream"}, nil),
		tracked:    prometheus.NewDesc("shopcast_audience_tracked_viewers", "Viewer ids held for counting and rate limits, over all streams (capped by signal_max_viewers).", nil, nil),
	}
}

func (c *audienceCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.accepted
	ch <- c.refused
	ch <- c.viewers
	ch <- c.tracked
}

func (c *audienceCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.src.Stats()
	for kind, n := range st.Accepted {
		ch <- prometheus.MustNewConstMetric(c.accepted, prometheus.CounterValue, float64(n), kind)
	}
	for _, r := range st.Refused {
		ch <- prometheus.MustNewConstMetric(c.refused, prometheus.CounterValue, float64(r.N), r.Kind, r.Reason)
	}
	names := make([]string, 0, len(st.Viewers))
	for name := range st.Viewers {
		names = append(names, name)
	}
	slices.Sort(names)
	var other float64
	own := 0
	for _, name := range names {
		if own < c.maxStreams && name != OtherStream {
			own++
			ch <- prometheus.MustNewConstMetric(c.viewers, prometheus.GaugeValue, float64(st.Viewers[name]), name)
			continue
		}
		other += float64(st.Viewers[name])
	}
	if own < len(names) {
		ch <- prometheus.MustNewConstMetric(c.viewers, prometheus.GaugeValue, other, OtherStream)
	}
	ch <- prometheus.MustNewConstMetric(c.tracked, prometheus.GaugeValue, float64(st.TrackedViewers))
}
