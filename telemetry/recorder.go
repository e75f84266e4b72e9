package telemetry

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shopcast/shopcast/recorder"
)

// RecorderStats gives the recorder's counters; recorder.Recorder
// implements it.
type RecorderStats interface {
	Stats() recorder.Stats
}

// recorderCollector reads the recorder's counters at scrape time.
type recorderCollector struct {
	src                                    RecorderStats
	bytes, active, errors, dropped, paused *prometheus.Desc
}

func newRecorderCollector(src RecorderStats) *recorderCollector {
	return &recorderCollector{
		src:     src,
		bytes:   prometheus.NewDesc("shopcast_record_bytes_written_total", "Media bytes (segments and init sections) written to recordings.", nil, nil),
		active:  prometheus.NewDesc("shopcast_recordings_active", "Recordings being written.", nil, nil),
		errors:  prometheus.NewDesc("shopcast_record_write_errors_total", "Recording writes that failed (each pauses recording for a while).", nil, nil),
		dropped: prometheus.NewDesc("shopcast_record_segments_dropped_total", "Segments not recorded: the recorder's queue was full, or recording was paused.", nil, nil),
		paused:  prometheus.NewDesc("shopcast_record_paused", "1 while recording is paused (low disk space or a write error); the live streams go on.", nil, nil),
	}
}

func (c *recorderCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.bytes
	ch <- c.active
	ch <- c.errors
	ch <- c.dropped
	ch <- c.paused
}

func (c *recorderCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.src.Stats()
	paused := 0.0
	if st.Paused {
		paused = 1
	}
	ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.CounterValue, float64(st.BytesWritten))
	ch <- prometheus.MustNewConstMetric(c.active, prometheus.GaugeValue, float64(st.Active))
	ch <- prometheus.MustNewConstMetric(c.errors, prometheus.CounterValue, float64(st.WriteErrors))
	ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(st.SegmentsDropped))
	ch <- prometheus.MustNewConstMetric(c.paused, prometheus.GaugeValue, paused)
}
