package e2e

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopcast/shopcast/internal/e2etest"
	"github.com/shopcast/shopcast/internal/testpub"
)

// The CDN test's load: LL-HLS viewers through the edge, for this long.
const (
	cdnViewers  = 200
	cdnDuration = 20 * time.Second
)

// TestCDNEdge runs the edge configs of deploy/ from Debian's packages in
// front of shopcast on loopback, plays the stream through each
// with cdnViewers LL-HLS viewers, and checks what a CDN operator relies on:
// the origin sees about one request per part and per playlist version (not
// one per viewer), every viewer gets the same bytes, the origin's
// Cache-Control comes through. It prints the latency the edge adds: when a
// viewer behind the edge got each part, against a viewer on the origin.
// SHOPCAST_CDN_BASELINE=1 first runs the same viewers on the origin, no edge.
func TestCDNEdge(t *testing.T) {
	if testing.Short() {
		t.Skip("CDN edge end-to-end test: not in -short")
	}
	bins := map[string]string{}
	for _, e := range edges {
		bin, err := lookBin(e.bin)
		if err != nil {
			t.Logf("%s: %s is missing (apt-get install %s): %v", e.name, e.bin, e.pkg, err)
			continue
		}
		bins[e.name] = bin
	}
	if len(bins) == 0 {
		t.Skip("no CDN edge installed: apt-get install nginx-light varnish (.ci/run does)")
	}

	const name = "shop"
	srv := startShopcast(t)
	ctx, cancel := context.WithCancel(context.Background())
	pubDone := make(chan error, 1)
	go func() {
		// The 4 s fixture, looped, in real time: long enough for both edges.
		pubDone <- testpub.Publish(ctx, "rtmp://"+srv.RTMP+"/live/"+name, "../testdata/h264_aac.flv", testpub.Options{Loops: 100})
	}()
	t.Cleanup(func() { cancel(); <-pubDone })
	e2etest.WaitUntil(t, 20*time.Second, "the stream's playlist", func() bool {
		code, _ := status(http.MethodGet, srv.url("/live/"+name+"/stream.m3u8"))
		return code == http.StatusOK
	})

	var results []cdnResult
	runs := edges
	if os.Getenv("SHOPCAST_CDN_BASELINE") != "" {
		// The baseline: the same viewers on the origin, no edge: what the
		// origin pays without one, and the delays cdnViewers clients on
		// this machine cause by themselves.
		runs = append([]edge{{name: "none"}}, edges...)
	}
	for _, e := range runs {
		t.Run(e.name, func(t *testing.T) {
			bin, ok := bins[e.name]
			if !ok && e.start != nil {
				t.Skipf("%s is missing: apt-get install %s (.ci/run does)", e.bin, e.pkg)
			}
			select {
			case err := <-pubDone:
				t.Fatalf("the publisher stopped: %v", err)
			default:
			}
			results = append(results, runCDN(t, e, bin, srv, name))
		})
	}
	if len(results) > 0 {
		var b strings.Builder
		fmt.Fprintf(&b, "\n%d LL-HLS viewers for %v through each edge (none: on the origin); when a viewer got a part after a lone viewer on the origin did:\n", cdnViewers, cdnDuration)
		fmt.Fprintf(&b, "%-8s %6s %9s %14s %18s %10s %9s %9s %9s %9s\n",
			"edge", "parts", "edge req", "origin parts", "origin blocking", "origin pl", "p50", "p90", "p99", "max")
		for _, r := range results {
			fmt.Fprintf(&b, "%-8s %6d %9d %6d (%5.2fx) %8d/%4d vers %10d %9v %9v %9v %9v\n",
				r.edge, r.parts, r.edgeRequests, r.originParts, float64(r.originParts)/float64(max(r.parts, 1)),
				r.originBlocking, r.blockingVersions, r.originPlain,
				ms(r.p50), ms(r.p90), ms(r.p99), ms(r.max))
		}
		if raceEnabled {
			b.WriteString("(built with -race: the viewers' own CPU inflates these delays; run without -race for the figures)\n")
		}
		t.Log(b.String())
	}
}

// cdnResult is what one edge did under load.
type cdnResult struct {
	edge string
	// parts is the number of distinct parts the origin served through the
	// edge; originParts the part requests it got for them.
	parts, originParts int
	// originBlocking is the blocking playlist requests the origin got, for
	// blockingVersions distinct (_HLS_msn, _HLS_part) queries.
	originBlocking, blockingVersions int
	// originPlain is the playlist requests without a query.
	originPlain int
	// edgeRequests is what the viewers asked the edge.
	edgeRequests int
	// The delay a viewer through the edge got a part after the viewer on
	// the origin did, over every viewer and part.
	p50, p90, p99, max time.Duration
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0fms", float64(d)/float64(time.Millisecond)) }

func runCDN(t *testing.T, e edge, bin string, srv *shopcast, name string) cdnResult {
	// The origin as the edge sees it, and as the reference viewer sees it:
	// the same hop, counted apart.
	originSide := startCountingProxy(t, srv.HTTP)
	directSide := startCountingProxy(t, srv.HTTP)
	edgeBase := "http://" + originSide.addr + "/live/" + name + "/"
	if e.start != nil {
		listen := e2etest.FreeAddr(t)
		e.start(t, bin, t.TempDir(), listen, originSide.addr)
		edgeBase = "http://" + listen + "/live/" + name + "/"
		e2etest.WaitUntil(t, 15*time.Second, e.name+" serving the playlist", func() bool {
			code, _ := status(http.MethodGet, edgeBase+"stream.m3u8")
			return code == http.StatusOK
		})
	}
	originSide.reset()

	ctx, cancel := context.WithTimeout(context.Background(), cdnDuration)
	defer cancel()
	direct := newLLViewer("http://" + directSide.addr + "/live/" + name + "/")
	viewers := make([]*llViewer, cdnViewers)
	var wg sync.WaitGroup
	for i := range viewers {
		viewers[i] = newLLViewer(edgeBase)
		wg.Go(func() { viewers[i].run(ctx) })
	}
	wg.Go(func() { direct.run(ctx) })
	wg.Wait()
	defer direct.c.CloseIdleConnections()
	for _, v := range viewers {
		defer v.c.CloseIdleConnections()
	}
	reqs := originSide.requests()

	r := cdnResult{edge: e.name}

	// What the origin saw.
	parts := map[string]int{}
	versions := map[string]int{}
	other := map[string]int{}
	for _, q := range reqs {
		base := path.Base(q.path)
		switch {
		case strings.HasPrefix(base, "part") && strings.HasSuffix(base, ".m4s"):
			parts[base]++
			r.originParts++
		case base == "stream.m3u8" && q.query != "":
			v, err := url.ParseQuery(q.query)
			if err != nil || !v.Has("_HLS_msn") {
				other[base+"?"+q.query]++
				continue
			}
			versions[q.query]++
			r.originBlocking++
		case base == "stream.m3u8":
			r.originPlain++
		default:
			other[base]++
		}
	}
	r.parts, r.blockingVersions = len(parts), len(versions)
	for _, v := range viewers {
		r.edgeRequests += v.requests
	}
	t.Logf("%s: viewers made %d requests to the edge; the origin got %d: %d for %d parts, %d blocking playlists for %d versions, %d plain playlists, other %v",
		e.name, r.edgeRequests, len(reqs), r.originParts, r.parts, r.originBlocking, r.blockingVersions, r.originPlain, other)
	if e.start != nil {
		for p, n := range parts {
			if n > 1 {
				t.Logf("%s: the origin got %s %d times", e.name, p, n)
			}
		}
	}

	// What the viewers got.
	ref := map[int64]gotPart{}
	for _, g := range direct.got {
		ref[g.n] = g
	}
	if len(direct.got) < int(cdnDuration/time.Second) {
		t.Fatalf("the viewer on the origin got only %d parts in %v (%d errors, first: %v)", len(direct.got), cdnDuration, direct.errors, direct.firstErr)
	}
	var delays []time.Duration
	var errs, mismatched, compared int
	var firstErr error
	perViewer := make([]int, 0, len(viewers))
	sums := map[int64][32]byte{}
	for _, g := range direct.got {
		sums[g.n] = g.sum
	}
	for _, v := range viewers {
		errs += v.errors
		if firstErr == nil {
			firstErr = v.firstErr
		}
		perViewer = append(perViewer, len(v.got))
		for _, g := range v.got {
			if s, ok := sums[g.n]; !ok {
				sums[g.n] = g.sum
			} else {
				compared++
				if s != g.sum {
					mismatched++
				}
			}
			if d, ok := ref[g.n]; ok {
				delays = append(delays, g.at.Sub(d.at))
			}
		}
	}
	slices.Sort(perViewer)
	t.Logf("%s: parts per viewer: min %d, median %d, max %d (the viewer on the origin: %d); %d viewer errors (first: %v)",
		e.name, perViewer[0], perViewer[len(perViewer)/2], perViewer[len(perViewer)-1], len(direct.got), errs, firstErr)

	// A viewer notices: every part plays, and is the same for everyone.
	if mismatched > 0 {
		t.Errorf("%s: %d of %d parts received through the edge differ from another viewer's copy", e.name, mismatched, compared)
	}
	if compared == 0 {
		t.Errorf("%s: no part was received by two viewers", e.name)
	}
	// Half, not all: on a loaded machine a viewer may fall behind now and
	// then and rejoin at the live edge; one that stalls for half the run
	// is broken.
	if least := perViewer[0]; e.start != nil && float64(least) < 0.5*float64(len(direct.got)) {
		t.Errorf("%s: a viewer through the edge got %d parts, the viewer on the origin %d", e.name, least, len(direct.got))
	}
	if errs > len(viewers) {
		t.Errorf("%s: %d viewer errors (first: %v)", e.name, errs, firstErr)
	}

	t.Logf("%s: %d parts compared across viewers, %d differ", e.name, compared, mismatched)

	// An operator notices: the origin's load does not grow with viewers.
	if e.start == nil {
		return r.finish(t, delays)
	}
	if r.parts < int(cdnDuration/time.Second) {
		t.Errorf("%s: the origin served only %d distinct parts in %v", e.name, r.parts, cdnDuration)
	}
	if float64(r.originParts) > 1.2*float64(r.parts) {
		t.Errorf("%s: the origin got %d part requests for %d parts (want at most 1.2 per part, %d viewers)", e.name, r.originParts, r.parts, cdnViewers)
	}
	if float64(r.originBlocking) > 1.5*float64(r.blockingVersions) {
		t.Errorf("%s: the origin got %d blocking playlist requests for %d versions (want at most 1.5 per version, %d viewers)", e.name, r.originBlocking, r.blockingVersions, cdnViewers)
	}
	// Plain playlists live 1 s at the edge: about one a second at most.
	if limit := 2 * int(cdnDuration/time.Second); r.originPlain > limit {
		t.Errorf("%s: the origin got %d plain playlist requests in %v (want at most %d)", e.name, r.originPlain, cdnDuration, limit)
	}

	// A part the viewers got about 3 s ago: fresh at the edge (12 s),
	// maybe gone from the origin (it lists parts for 3 target durations).
	seen := viewers[0].got
	checkEdgeHeaders(t, e, edgeBase, originSide, seen[max(len(seen)-10, 0)].n)

	return r.finish(t, delays)
}

// finish sets the delay percentiles and logs them.
func (r cdnResult) finish(t *testing.T, delays []time.Duration) cdnResult {
	slices.Sort(delays)
	r.p50, r.p90, r.p99 = percentile(delays, 0.50), percentile(delays, 0.90), percentile(delays, 0.99)
	if len(delays) > 0 {
		r.max = delays[len(delays)-1]
	}
	t.Logf("%s: a part reached a viewer after the viewer on the origin by p50 %v, p90 %v, p99 %v, max %v (%d samples)",
		r.edge, ms(r.p50), ms(r.p90), ms(r.p99), ms(r.max), len(delays))
	return r
}

// checkEdgeHeaders checks that a part the viewers got comes from the edge's
// cache with the Cache-Control the origin sent it with, and an Age when the
// edge sets one.
func checkEdgeHeaders(t *testing.T, e edge, edgeBase string, origin *countingProxy, n int64) {
	t.Helper()
	u := edgeBase + fmt.Sprintf("part%d.m4s", n)
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", u, resp.Status)
	}
	h := resp.Header
	want, ok := origin.originCacheControl(resp.Request.URL.RequestURI())
	if !ok {
		t.Fatalf("%s: the origin never got %s", e.name, u)
	}
	if got := h.Get("Cache-Control"); got != want {
		t.Errorf("%s: %s Cache-Control %q, the origin sent %q", e.name, u, got, want)
	}
	if hit := h.Get("X-Cache-Status") + h.Get("X-Cache"); hit != "HIT" {
		t.Errorf("%s: %s, received by the viewers, is not a cache hit: %q", e.name, u, hit)
	}
	switch age := h.Get("Age"); {
	case e.name == "varnish" && (age == "" || age == "0"):
		t.Errorf("varnish: %s, cached seconds ago, has Age %q", u, age)
	case age == "":
		t.Logf("%s: %s: no Age header (%s computes none; the origin sends none)", e.name, u, e.name)
	default:
		t.Logf("%s: %s: Age %s, Cache-Control %q", e.name, u, age, h.Get("Cache-Control"))
	}
}

// percentile returns the p quantile of sorted d (nearest rank).
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(d)))) - 1
	return d[min(max(i, 0), len(d)-1)]
}
