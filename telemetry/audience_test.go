package telemetry

import (
	"fmt"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shopcast/shopcast/audience"
)

type fakeAudience audience.Stats

func (f fakeAudience) Stats() audience.Stats { return audience.Stats(f) }

func TestAudienceCollector(t *testing.T) {
	src := fakeAudience{
		Accepted:       map[string]uint64{"heartbeat": 7, "vote": 2},
		Refused:        []audience.Refused{{Kind: "reaction", Reason: "rate_viewer", N: 3}, {Kind: "unknown", Reason: "too_large", N: 1}},
		Viewers:        map[string]int64{"a": 10, "b": 20, "c": 30, "d": 40},
		TrackedViewers: 123,
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewAudienceCollector(src, 2))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels string
			for _, l := range m.GetLabel() {
				labels += l.GetName() + "=" + l.GetValue() + " "
			}
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
			got[mf.GetName()] = append(got[mf.GetName()], fmt.Sprintf("%s%g", labels, v))
		}
	}
	for name, want := range map[string][]string{
		"shopcast_audience_viewers":         {"stream=a 10", "stream=b 20", "stream=other 70"},
		"shopcast_signals_accepted_total":   {"kind=heartbeat 7", "kind=vote 2"},
		"shopcast_signals_refused_total":    {"kind=reaction reason=rate_viewer 3", "kind=unknown reason=too_large 1"},
		"shopcast_audience_tracked_viewers": {"123"},
	} {
		g := got[name]
		slices.Sort(g)
		if !slices.Equal(g, want) {
			t.Errorf("%s: got %q, want %q", name, g, want)
		}
	}
}
