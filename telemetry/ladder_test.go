package telemetry

import (
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/shopcast/shopcast/ladder"
	"github.com/shopcast/shopcast/packager"
)

type fakeLadder struct{ s ladder.Stats }

func (f fakeLadder) Stats() ladder.Stats { return f.s }

// TestLadderMetrics: the ladder's counters are exported as they are, the
// rung names the only label.
func TestLadderMetrics(t *testing.T) {
	t.Parallel()
	mgr := packager.New(packager.Config{}, slog.New(slog.DiscardHandler))
	t.Cleanup(mgr.Close)
	met := &Metrics{Packager: mgr, Ladder: fakeLadder{ladder.Stats{
		Running: 2, Restarts: 3, StartFailures: 1, Dropped: 40, Posters: 7, PosterErrors: 1, PosterSkipped: 2,
		PosterCPU: 700 * time.Millisecond,
		Rungs:     []ladder.RungStats{{Name: "480p", Frames: 900, Bytes: 4500000}, {Name: "360p", Frames: 900, Bytes: 2200000}},
	}}}
	rec := httptest.NewRecorder()
	met.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(rec.Body.String()))
	if err != nil {
		t.Fatal(err)
	}
	value := func(name, rung string) float64 {
		f, ok := families[name]
		if !ok {
			t.Errorf("no %s", name)
			return -1
		}
		for _, m := range f.Metric {
			labels := map[string]string{}
			for _, l := range m.Label {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["rung"] != rung || len(labels) > 1 {
				continue
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			}
		}
		t.Errorf("no %s{rung=%q}", name, rung)
		return -1
	}
	for _, tc := range []struct {
		name, rung string
		want       float64
	}{
		{"shopcast_ladder_ffmpeg_running", "", 2},
		{"shopcast_ladder_ffmpeg_restarts_total", "", 3},
		{"shopcast_ladder_start_failures_total", "", 1},
		{"shopcast_ladder_frames_dropped_total", "", 40},
		{"shopcast_ladder_rung_frames_total", "480p", 900},
		{"shopcast_ladder_rung_bytes_total", "360p", 2200000},
		{"shopcast_posters_made_total", "", 7},
		{"shopcast_poster_errors_total", "", 1},
		{"shopcast_posters_skipped_total", "", 2},
		{"shopcast_poster_cpu_seconds_total", "", 0.7},
	} {
		if got := value(tc.name, tc.rung); got != tc.want {
			t.Errorf("%s{rung=%q} = %v, want %v", tc.name, tc.rung, got, tc.want)
		}
	}
}
