package telemetry

import (
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/shopcast/shopcast/packager"
)

// fakeStats is a packager whose counters the test sets.
type fakeStats struct {
	mu sync.Mutex
	st packager.Stats
}

func (f *fakeStats) Stats() packager.Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st
}

func (f *fakeStats) set(parts map[string]int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.st = packager.Stats{}
	// Sorted by name, as the packager gives them.
	for _, name := range slices.Sorted(maps.Keys(parts)) {
		n := parts[name]
		f.st.Streams = append(f.st.Streams, packager.StreamStats{Name: name, Parts: n, Lag: packager.Histogram{Count: uint64(n)}})
	}
}

// gather returns family name's values by stream label.
func gather(t *testing.T, m *Metrics, name string) map[string]float64 {
	t.Helper()
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, s := range f.GetMetric() {
			out[streamLabel(s)] = s.GetCounter().GetValue() + s.GetGauge().GetValue() + float64(s.GetHistogram().GetSampleCount())
		}
	}
	return out
}

func streamLabel(s *dto.Metric) string {
	for _, l := range s.GetLabel() {
		if l.GetName() == "stream" {
			return l.GetValue()
		}
	}
	return ""
}

// TestStreamLabelCap checks that only MaxStreamLabels streams get their own
// label, and that every label's counters only grow as streams come, go and
// restart between scrapes.
func TestStreamLabelCap(t *testing.T) {
	src := &fakeStats{}
	m := &Metrics{Packager: src, MaxStreamLabels: 2}
	steps := []struct {
		name  string
		parts map[string]int64 // the packager's counters at this scrape
		want  map[string]float64
	}{
		{"three streams, two labels", map[string]int64{"a": 5, "b": 7, "c": 11},
			map[string]float64{"a": 5, "b": 7, OtherStream: 11}},
		{"a fourth stream joins other", map[string]int64{"a": 6, "b": 7, "c": 12, "d": 1},
			map[string]float64{"a": 6, "b": 7, OtherStream: 13}},
		{"a stream in other goes: other does not go down", map[string]int64{"a": 6, "b": 7, "d": 2},
			map[string]float64{"a": 6, "b": 7, OtherStream: 14}},
		{"a labelled stream goes: its series goes, other streams keep theirs", map[string]int64{"b": 8, "d": 3},
			map[string]float64{"b": 8, OtherStream: 15}},
		{"a new stream takes the free label", map[string]int64{"b": 8, "d": 3, "e": 4},
			map[string]float64{"b": 8, "e": 4, OtherStream: 15}},
		{"a stream restarted from zero counts from zero", map[string]int64{"b": 2, "d": 3, "e": 4},
			map[string]float64{"b": 10, "e": 4, OtherStream: 15}},
		{"a stream really named other shares the other label", map[string]int64{"b": 2, "d": 3, "e": 4, "other": 1},
			map[string]float64{"b": 10, "e": 4, OtherStream: 16}},
	}
	for _, st := range steps {
		src.set(st.parts)
		for _, family := range []string{"shopcast_parts_total", "shopcast_publish_to_deliverable_seconds"} {
			got := gather(t, m, family)
			if len(got) != len(st.want) {
				t.Errorf("%s: %s = %v, want %v", st.name, family, got, st.want)
				continue
			}
			for lbl, v := range st.want {
				if got[lbl] != v {
					t.Errorf("%s: %s{stream=%q} = %v, want %v", st.name, family, lbl, got[lbl], v)
				}
			}
		}
	}
}

func TestViewerSet(t *testing.T) {
	t0 := time.Date(2025, 6, 1, 20, 0, 0, 0, time.UTC)
	type visit struct {
		at                time.Duration
		stream, ip, agent string
	}
	cases := []struct {
		name        string
		max         int
		visits      []visit
		at          time.Duration
		want        map[string]int
		wantDropped uint64
	}{
		{"same session counts once", 10,
			[]visit{{0, "s", "1.1.1.1", "A"}, {time.Second, "s", "1.1.1.1", "A"}},
			2 * time.Second, map[string]int{"s": 1}, 0},
		{"IP and User-Agent tell sessions apart", 10,
			[]visit{{0, "s", "1.1.1.1", "A"}, {0, "s", "1.1.1.1", "B"}, {0, "s", "2.2.2.2", "A"}},
			time.Second, map[string]int{"s": 3}, 0},
		{"per stream", 10,
			[]visit{{0, "s", "1.1.1.1", "A"}, {0, "t", "1.1.1.1", "A"}},
			time.Second, map[string]int{"s": 1, "t": 1}, 0},
		{"a session idle past the window is gone", 10,
			[]visit{{0, "s", "1.1.1.1", "A"}, {20 * time.Second, "s", "2.2.2.2", "A"}},
			31 * time.Second, map[string]int{"s": 1}, 0},
		{"a session seen again stays", 10,
			[]visit{{0, "s", "1.1.1.1", "A"}, {25 * time.Second, "s", "1.1.1.1", "A"}},
			50 * time.Second, map[string]int{"s": 1}, 0},
		{"full: new sessions are dropped", 2,
			[]visit{{0, "s", "1", "A"}, {0, "s", "2", "A"}, {0, "s", "3", "A"}, {0, "s", "4", "A"}},
			time.Second, map[string]int{"s": 2}, 2},
		{"full: expired sessions make room", 2,
			[]visit{{0, "s", "1", "A"}, {0, "s", "2", "A"}, {40 * time.Second, "s", "3", "A"}},
			41 * time.Second, map[string]int{"s": 1}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := newViewerSet(30*time.Second, c.max)
			for _, vis := range c.visits {
				v.see(vis.stream, vis.ip, vis.agent, t0.Add(vis.at))
			}
			got, dropped := v.count(t0.Add(c.at))
			if len(got) != len(c.want) || dropped != c.wantDropped {
				t.Fatalf("viewers %v dropped %d, want %v dropped %d", got, dropped, c.want, c.wantDropped)
			}
			for s, n := range c.want {
				if got[s] != n {
					t.Errorf("viewers of %s = %d, want %d", s, got[s], n)
				}
			}
		})
	}
}

// TestVariantMetrics: a variant's counters are labelled by stream and
// variant, only grow (across a restart of the variant), and the streams
// folded into OtherStream share one variant label.
func TestVariantMetrics(t *testing.T) {
	src := &fakeStats{}
	m := &Metrics{Packager: src, MaxStreamLabels: 1}
	set := func(vparts map[string]map[string]int64) {
		src.mu.Lock()
		defer src.mu.Unlock()
		src.st = packager.Stats{}
		for _, name := range slices.Sorted(maps.Keys(vparts)) {
			st := packager.StreamStats{Name: name}
			for _, v := range slices.Sorted(maps.Keys(vparts[name])) {
				st.Variants = append(st.Variants, packager.VariantStats{Name: v, Parts: vparts[name][v], Video: packager.TrackStats{Frames: 3 * vparts[name][v]}})
			}
			src.st.Streams = append(src.st.Streams, st)
		}
	}
	read := func(family string) map[string]float64 {
		fams, err := m.Registry().Gather()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]float64{}
		for _, f := range fams {
			if f.GetName() != family {
				continue
			}
			for _, s := range f.GetMetric() {
				var stream, variant string
				for _, l := range s.GetLabel() {
					switch l.GetName() {
					case "stream":
						stream = l.GetValue()
					case "variant":
						variant = l.GetValue()
					}
				}
				out[stream+"/"+variant] = s.GetCounter().GetValue()
			}
		}
		return out
	}
	steps := []struct {
		name  string
		parts map[string]map[string]int64
		want  map[string]float64
	}{
		{"two variants, and a stream in other", map[string]map[string]int64{"a": {"480p": 5, "360p": 4}, "b": {"720p": 2, "x": 1}},
			map[string]float64{"a/480p": 5, "a/360p": 4, "other/other": 3}},
		{"a variant restarts from zero", map[string]map[string]int64{"a": {"480p": 1, "360p": 6}, "b": {"720p": 3, "x": 1}},
			map[string]float64{"a/480p": 6, "a/360p": 6, "other/other": 4}},
		{"a variant goes: its series stays while the stream lives", map[string]map[string]int64{"a": {"360p": 7}, "b": {}},
			map[string]float64{"a/480p": 6, "a/360p": 7, "other/other": 4}},
	}
	for _, st := range steps {
		set(st.parts)
		got := read("shopcast_variant_parts_total")
		if len(got) != len(st.want) {
			t.Errorf("%s: %v, want %v", st.name, got, st.want)
			continue
		}
		for k, v := range st.want {
			if got[k] != v {
				t.Errorf("%s: %s = %v, want %v", st.name, k, got[k], v)
			}
		}
		if f := read("shopcast_variant_ingest_frames_total"); f["a/360p"] != 3*st.want["a/360p"] {
			t.Errorf("%s: frames %v", st.name, f)
		}
	}
}
