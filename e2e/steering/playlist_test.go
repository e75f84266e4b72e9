package steering

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/playlist"

	"github.com/shopcast/shopcast/internal/e2etest"
)

// TestSteeredPlaylistAndKill reads the steered multivariant playlist of a
// live stream with gohlslib's parser and hls-parser in strict mode, checks
// the steering manifest has the fields the specification requires, then
// kills -9 the first node and measures how long the second takes to rank
// the dead pathway last: under one TTL.
func TestSteeredPlaylistAndKill(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: not in -short")
	}
	p := startPair(t, alignedKeys())
	p.feed(t, 120)
	a, b := p.nodes[0], p.nodes[1]

	_, body, err := get(a.HTTP + "/live/" + stream + "/index.m3u8")
	if err != nil {
		t.Fatal(err)
	}
	var mv playlist.Multivariant
	if err := mv.Unmarshal([]byte(body)); err != nil {
		t.Fatalf("gohlslib refuses the steered playlist: %v\n%s", err, body)
	}
	if len(mv.Variants) < 2 || len(mv.Variants)%2 != 0 {
		t.Fatalf("%d variants, want each of the stream's on both pathways:\n%s", len(mv.Variants), body)
	}
	half := len(mv.Variants) / 2
	for i, v := range mv.Variants {
		base := a.HTTP
		if i >= half {
			base = b.HTTP
		}
		if !strings.HasPrefix(v.URI, base+"/live/"+stream+"/") {
			t.Errorf("variant %d: URI %s, want it on %s", i, v.URI, base)
		}
		twin := mv.Variants[i%half]
		if v.Bandwidth != twin.Bandwidth || strings.Join(v.Codecs, ",") != strings.Join(twin.Codecs, ",") || v.Resolution != twin.Resolution {
			t.Errorf("variant %d differs from its twin on the other pathway", i)
		}
	}
	if !regexp.MustCompile(`(?m)^#EXT-X-CONTENT-STEERING:SERVER-URI="` + regexp.QuoteMeta(a.HTTP) + `/live/shop/steering.json",PATHWAY-ID="a"$`).MatchString(body) {
		t.Errorf("no EXT-X-CONTENT-STEERING naming pathway a:\n%s", body)
	}
	if msg := e2etest.StrictCheck(t, []string{body}); msg[0] != "" {
		t.Errorf("hls-parser strict refuses the steered playlist: %s\n%s", msg[0], body)
	}
	// Every variant URI plays: the media playlist answers on its pathway.
	for _, v := range mv.Variants {
		if code, _, err := get(v.URI); err != nil || code != 200 {
			t.Errorf("%s: %d %v", v.URI, code, err)
		}
	}

	// The manifest: VERSION 1, TTL, PATHWAY-PRIORITY, as JSON with the
	// specification's names.
	for _, n := range p.nodes {
		_, body, err := get(n.HTTP + "/live/" + stream + "/steering.json?_HLS_pathway=a&_HLS_throughput=1500000")
		if err != nil {
			t.Fatal(err)
		}
		var raw map[string]json.RawMessage
		if err := json.Unmarshal([]byte(body), &raw); err != nil {
			t.Fatalf("steering manifest is not JSON: %v: %s", err, body)
		}
		for _, k := range []string{"VERSION", "TTL", "PATHWAY-PRIORITY", "RELOAD-URI"} {
			if _, ok := raw[k]; !ok {
				t.Errorf("steering manifest lacks %s: %s", k, body)
			}
		}
		m, h := manifest(t, n.HTTP, "?_HLS_pathway=a")
		if m.Version != 1 || m.TTL != int(ttl.Seconds()) || strings.Join(m.PathwayPriority, ",") != "a,b" {
			t.Errorf("%s: manifest %+v, want VERSION 1, TTL %d, a,b", n.HTTP, m, int(ttl.Seconds()))
		}
		if cc := h.Get("Cache-Control"); cc != "private, no-store" {
			t.Errorf("Cache-Control %q", cc)
		}
	}
	if code, _, _ := get(b.HTTP + "/live/" + stream + "/steering.json?_HLS_throughput=lots"); code != 400 {
		t.Errorf("bad _HLS_throughput: %d, want 400", code)
	}

	a.Kill()
	killed := time.Now()
	var took time.Duration
	for {
		m, _ := manifest(t, b.HTTP, "?_HLS_pathway=b")
		if strings.Join(m.PathwayPriority, ",") == "b,a" {
			took = time.Since(killed)
			if m.ReloadURI != b.HTTP+"/live/"+stream+"/steering.json" {
				t.Errorf("RELOAD-URI %s, want the live node's (the only healthy one)", m.ReloadURI)
			}
			break
		}
		if time.Since(killed) > 3*ttl {
			t.Fatalf("PATHWAY-PRIORITY still %v %v after the kill", m.PathwayPriority, time.Since(killed))
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("pathway a ranked last %v after kill -9 (TTL %v)", took, ttl)
	if took > ttl {
		t.Errorf("PATHWAY-PRIORITY changed %v after the kill, more than one TTL (%v)", took, ttl)
	}
	// The live node's multivariant playlist now starts players on b.
	_, body, _ = get(b.HTTP + "/live/" + stream + "/index.m3u8")
	if !strings.Contains(body, `PATHWAY-ID="b"`+"\n") || !strings.Contains(body, `SERVER-URI="`+b.HTTP) {
		t.Errorf("after the kill the multivariant does not start on b:\n%s", body)
	}
}
