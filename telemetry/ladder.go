package telemetry

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shopcast/shopcast/ladder"
)

// LadderStats gives the ladder's counters; ladder.Ladder implements it.
type LadderStats interface {
	Stats() ladder.Stats
}

// ladderCollector reads the ladder's counters at scrape time. Its only
// label is the rung name, which the configuration bounds.
type ladderCollector struct {
	src                                                 LadderStats
	running, restarts, startFailures, dropped           *prometheus.Desc
	rungFrames, rungBytes                               *prometheus.Desc
	posters, posterErrors, posterSkipped, posterCPUSecs *prometheus.Desc
}

func newLadderCollector(src LadderStats) *ladderCollector {
	return &ladderCollector{
		src:           src,
		running:       prometheus.NewDesc("shopcast_ladder_ffmpeg_running", "Ladder ffmpeg processes running.", nil, nil),
		restarts:      prometheus.NewDesc("shopcast_ladder_ffmpeg_restarts_total", "Ladder ffmpegs started again after they died or fell behind.", nil, nil),
		startFailures: prometheus.NewDesc("shopcast_ladder_start_failures_total", "Streams left without a ladder because ffmpeg failed at its first start.", nil, nil),
		dropped:       prometheus.NewDesc("shopcast_ladder_frames_dropped_total", "Source frames not given to a ladder's ffmpeg (its queue was full, or it was restarting).", nil, nil),
		rungFrames:    prometheus.NewDesc("shopcast_ladder_rung_frames_total", "Frames a rung gave back, over all streams.", []string{"rung"}, nil),
		rungBytes:     prometheus.NewDesc("shopcast_ladder_rung_bytes_total", "Video bytes a rung gave back, over all streams.", []string{"rung"}, nil),
		posters:       prometheus.NewDesc("shopcast_posters_made_total", "Poster images made.", nil, nil),
		posterErrors:  prometheus.NewDesc("shopcast_poster_errors_total", "Poster ffmpegs that failed.", nil, nil),
		posterSkipped: prometheus.NewDesc("shopcast_posters_skipped_total", "Poster turns put off because poster_concurrency ffmpegs were busy.", nil, nil),
		posterCPUSecs: prometheus.NewDesc("shopcast_poster_cpu_seconds_total", "CPU time (user and system) of the poster ffmpegs.", nil, nil),
	}
}

func (c *ladderCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.running, c.restarts, c.startFailures, c.dropped, c.rungFrames, c.rungBytes,
		c.posters, c.posterErrors, c.posterSkipped, c.posterCPUSecs} {
		ch <- d
	}
}

func (c *ladderCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.src.Stats()
	ch <- prometheus.MustNewConstMetric(c.running, prometheus.GaugeValue, float64(s.Running))
	ch <- prometheus.MustNewConstMetric(c.restarts, prometheus.CounterValue, float64(s.Restarts))
	ch <- prometheus.MustNewConstMetric(c.startFailures, prometheus.CounterValue, float64(s.StartFailures))
	ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(s.Dropped))
	for _, r := range s.Rungs {
		ch <- prometheus.MustNewConstMetric(c.rungFrames, prometheus.CounterValue, float64(r.Frames), r.Name)
		ch <- prometheus.MustNewConstMetric(c.rungBytes, prometheus.CounterValue, float64(r.Bytes), r.Name)
	}
	ch <- prometheus.MustNewConstMetric(c.posters, prometheus.CounterValue, float64(s.Posters))
	ch <- prometheus.MustNewConstMetric(c.posterErrors, prometheus.CounterValue, float64(s.PosterErrors))
	ch <- prometheus.MustNewConstMetric(c.posterSkipped, prometheus.CounterValue, float64(s.PosterSkipped))
	ch <- prometheus.MustNewConstMetric(c.posterCPUSecs, prometheus.CounterValue, s.PosterCPU.Seconds())
}
