package bench

import (
	"context"
	"fmt"

	shopcast "github.com/shopcast/shopcast/internal/server"
)

// rig is what the ramps (viewers, streams, idle) measure with: the server
// in this process and the load in a second one (LoadRole).
type rig struct {
	src *source
	srv *server
	lp  *loadProcess
}

// startRig reads the file the load will publish and starts the server
// (with its settings changed by edit, when set) and the load process.
func startRig(ctx context.Context, flv string, edit func(*shopcast.Config)) (*rig, error) {
	src, err := loadSource(flv)
	if err != nil {
		return nil, err
	}
	srv, err := startServerConfig(edit)
	if err != nil {
		return nil, err
	}
	lp, err := startLoad(ctx)
	if err != nil {
		srv.close()
		return nil, err
	}
	return &rig{src: src, srv: srv, lp: lp}, nil
}

func (r *rig) close() {
	r.lp.close()
	r.srv.close()
}

// climb measures the steps of a ramp in order: measure(n, add) brings the
// load to n (add more than the step before) and measures it. Each result
// goes to onStep, when set; the climb stops after the first step that does
// not pass. It returns the results so far, the largest count that passed,
// and a note naming the step that did not.
func climb[S any](steps []int, unit string, measure func(n, add int) (S, error),
	passed func(S) bool, onStep func(S)) (results []S, maxN int, note string, err error) {
	have := 0
	for _, n := range steps {
		if n <= have {
			continue
		}
		st, err := measure(n, n-have)
		if err != nil {
			return results, maxN, note, err
		}
		have = n
		results = append(results, st)
		if onStep != nil {
			onStep(st)
		}
		if !passed(st) {
			return results, maxN, fmt.Sprintf("%d %s missed the target", n, unit), nil
		}
		maxN = n
	}
	return results, maxN, "", nil
}

// climbSummary is the last line of a ramp's report.
func climbSummary(maxN int, unit, note string) string {
	s := fmt.Sprintf("  largest step within target: %d %s", maxN, unit)
	if note != "" {
		s += " (" + note + ")"
	}
	return s
}
