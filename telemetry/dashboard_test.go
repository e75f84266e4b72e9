package telemetry

import (
	"encoding/json"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/shopcast/shopcast/cues"
	"github.com/shopcast/shopcast/origin"
)

type noCues struct{}

func (noCues) OpenCues(string) ([]cues.Record, error) { return nil, nil }

// TestDashboardUsesExportedMetrics checks that every metric the Grafana
// dashboard queries is one /metrics exports, so that a renamed metric
// cannot leave an empty panel behind.
func TestDashboardUsesExportedMetrics(t *testing.T) {
	b, err := os.ReadFile("../deploy/grafana/shopcast.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard is not valid JSON: %v", err)
	}

	src := &fakeStats{}
	src.set(map[string]int64{"s": 1})
	m := &Metrics{Packager: src, Cues: noCues{}}
	req := httptest.NewRequest("GET", "/live/s/stream.m3u8", nil)
	m.ObserveLive(req, origin.LiveRequest{Stream: "s", Kind: origin.KindPlain, Status: 200})
	m.ObserveLive(req, origin.LiveRequest{Stream: "s", Kind: origin.KindPart, Status: 200})
	m.CueRejected(cues.RejectInvalid)
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	for _, f := range fams {
		exported[f.GetName()] = true
	}

	name := regexp.MustCompile(`\b(shopcast|go|process)_[a-z_]+`)
	queries := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			queries++
			for _, n := range name.FindAllString(tg.Expr, -1) {
				base := n
				for _, suffix := range []string{"_bucket", "_sum", "_count"} {
					if s, ok := strings.CutSuffix(n, suffix); ok && exported[s] {
						base = s
					}
				}
				if !exported[base] {
					t.Errorf("panel %q queries %s, which /metrics does not export", p.Title, n)
				}
			}
		}
	}
	if queries == 0 {
		t.Fatal("the dashboard has no queries")
	}
}
