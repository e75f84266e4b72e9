package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gohlslib/v2"
	"github.com/bluenviron/gohlslib/v2/pkg/codecs"
	"github.com/bluenviron/gohlslib/v2/pkg/playlist"

	"github.com/shopcast/shopcast/internal/e2etest"
	"github.com/shopcast/shopcast/internal/server"
)

// mediaPlaylist parses a media playlist with gohlslib's parser.
func mediaPlaylist(t *testing.T, b []byte) *playlist.Media {
	t.Helper()
	pl, err := playlist.Unmarshal(b)
	if err != nil {
		t.Fatalf("playlist: %v\n%s", err, b)
	}
	m, ok := pl.(*playlist.Media)
	if !ok {
		t.Fatalf("not a media playlist:\n%s", b)
	}
	return m
}

// checkClusterView reads GET /api/v1/cluster on node 2 (three healthy
// nodes, the stream owned by node 1) and node 3's metrics (its proxied
// requests counted).
func checkClusterView(t *testing.T, nodes []*node) {
	t.Helper()
	var view struct {
		Node  string `json:"node"`
		Nodes []struct {
			Name    string `json:"name"`
			URL     string `json:"url"`
			Healthy bool   `json:"healthy"`
			Load    struct {
				Streams int `json:"streams"`
			} `json:"load"`
		} `json:"nodes"`
		Streams []struct {
			Stream, Node, URL string
			Live              bool
		} `json:"streams"`
	}
	e2etest.WaitUntil(t, 10*time.Second, "three nodes in the cluster view", func() bool {
		code, b, _ := e2etest.Get(t, nodes[1].HTTP+"/api/v1/cluster")
		if code != http.StatusOK || json.Unmarshal(b, &view) != nil {
			t.Fatalf("GET /api/v1/cluster: %d\n%s", code, b)
		}
		return len(view.Nodes) == 3
	})
	for i, n := range view.Nodes {
		if n.Name != nodes[i].name || n.URL != nodes[i].HTTP || !n.Healthy {
			t.Errorf("node %d in the view: %+v", i, n)
		}
	}
	if view.Node != "n2" || len(view.Streams) != 1 || view.Streams[0].Stream != "shop" || view.Streams[0].Node != "n1" ||
		view.Streams[0].URL != nodes[0].HTTP || !view.Streams[0].Live || view.Nodes[0].Load.Streams != 1 {
		t.Errorf("cluster view %+v", view)
	}
	_, metrics, _ := e2etest.Get(t, nodes[2].HTTP+"/metrics")
	m := regexp.MustCompile(`shopcast_cluster_proxied_requests_total\{outcome="proxied"\} (\d+)`).FindSubmatch(metrics)
	if m == nil || string(m[1]) == "0" {
		t.Errorf("node 3's metrics count no proxied request:\n%s", metrics)
	}
	if !bytes.Contains(metrics, []byte(`shopcast_cluster_healthy 1`)) {
		t.Error("node 3's metrics do not show it healthy")
	}
}

// playToEnd runs c until the stream ends: gohlslib's low-latency reader
// stops with "preload hint disappeared" at EXT-X-ENDLIST, its segment
// reader with "end of stream"; any other stop, a decode error or the
// timeout is an error.
func playToEnd(c *gohlslib.Client, timeout time.Duration) error {
	quiet := func(string) {}
	c.OnDownloadPrimaryPlaylist, c.OnDownloadStreamPlaylist, c.OnDownloadSegment, c.OnDownloadPart = quiet, quiet, quiet, quiet
	var mu sync.Mutex
	var decodeErrs []error
	c.OnDecodeError = func(err error) {
		mu.Lock()
		defer mu.Unlock()
		decodeErrs = append(decodeErrs, err)
	}
	if err := c.Start(); err != nil {
		return err
	}
	defer c.Close()
	waited := make(chan error, 1)
	go func() { waited <- c.Wait2() }()
	select {
	case err := <-waited:
		if err != nil && !strings.Contains(err.Error(), "end of stream") && !strings.Contains(err.Error(), "preload hint disappeared") {
			return fmt.Errorf("gohlslib client: %w", err)
		}
	case <-time.After(timeout):
		return errors.New("gohlslib client did not reach the end")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(decodeErrs) > 0 {
		return fmt.Errorf("gohlslib decode errors: %v", decodeErrs)
	}
	return nil
}

// nextPart is the (MSN, part) of the part after the last one m lists.
func nextPart(m *playlist.Media) (int, int) {
	return m.MediaSequence + len(m.Segments), len(m.Parts)
}

// TestClusterAnyNodeServesAnyStream publishes with ffmpeg to node 1 and
// reads through nodes 2 and 3: the same playlists and byte-identical parts
// with the owner's headers, blocking reloads that release with the
// owner's, and every access unit for gohlslib's Client through node 3.
func TestClusterAnyNodeServesAnyStream(t *testing.T) {
	short := func(c *server.Config) { c.GracePeriod, c.EndedLinger = 2*time.Second, 20*time.Second }
	nodes := startCluster(t, member{edit: short}, member{edit: short}, member{edit: short})
	ffmpegBin, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Fatal("ffmpeg is required (make deps installs it)")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 120*time.Second)
	defer cancel()
	// 12 s at 30 fps without B-frames: gohlslib's PTS rise 3000 a frame.
	cmd := exec.CommandContext(ctx, ffmpegBin, "-hide_banner", "-nostdin", "-loglevel", "error", "-re",
		"-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", "12", "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
		"-pix_fmt", "yuv420p", "-g", "30", "-keyint_min", "30", "-sc_threshold", "0", "-b:v", "300k",
		"-c:a", "aac", "-b:a", "64k", "-f", "flv", nodes[0].RTMP+"/live/shop")
	var ffOut bytes.Buffer
	cmd.Stderr = &ffOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	base := func(n *node) string { return n.HTTP + "/live/shop/" }
	e2etest.WaitUntil(t, 30*time.Second, "the stream on node 3", func() bool {
		code, _, _ := tryGet(base(nodes[2]) + "stream.m3u8")
		return code == http.StatusOK
	})

	// gohlslib's Client plays through node 3 to the end of the stream.
	var mu sync.Mutex
	var videoPTS []int64
	readErr := make(chan error, 1)
	go func() {
		c := &gohlslib.Client{URI: base(nodes[2]) + "index.m3u8"}
		c.OnTracks = func(tracks []*gohlslib.Track) error {
			for _, tr := range tracks {
				if _, ok := tr.Codec.(*codecs.H264); ok {
					c.OnDataH26x(tr, func(pts, _ int64, _ [][]byte) {
						mu.Lock()
						videoPTS = append(videoPTS, pts)
						mu.Unlock()
					})
				}
			}
			return nil
		}
		readErr <- playToEnd(c, 90*time.Second)
	}()

	// The multivariant playlist is the same everywhere.
	_, want, wantHdr := e2etest.Get(t, base(nodes[0])+"index.m3u8")
	for _, n := range nodes[1:] {
		code, b, h := e2etest.Get(t, base(n)+"index.m3u8")
		if code != http.StatusOK || !bytes.Equal(b, want) || h.Get("Content-Type") != wantHdr.Get("Content-Type") {
			t.Errorf("%s: index.m3u8 %d %q:\n%s\nwant:\n%s", n.name, code, h.Get("Content-Type"), b, want)
		}
	}

	// Blocking reloads for the next part, on the owner and through nodes 2
	// and 3 at once: the same playlist, released within a few ms.
	var lags []time.Duration
	for round := 0; round < 10; round++ {
		_, b, _ := e2etest.Get(t, base(nodes[0])+"stream.m3u8")
		m := mediaPlaylist(t, b)
		if m.Endlist {
			break
		}
		msn, part := nextPart(m)
		q := fmt.Sprintf("stream.m3u8?_HLS_msn=%d&_HLS_part=%d", msn, part)
		bodies := make([][]byte, len(nodes))
		done := make([]time.Time, len(nodes))
		codes := make([]int, len(nodes))
		var wg sync.WaitGroup
		for i, n := range nodes {
			wg.Go(func() {
				codes[i], bodies[i], _ = tryGet(base(n) + q)
				done[i] = time.Now()
			})
		}
		wg.Wait()
		for i := range nodes {
			if codes[i] != http.StatusOK {
				t.Fatalf("round %d: %s answered %d to %s", round, nodes[i].name, codes[i], q)
			}
			if i > 0 {
				if !bytes.Equal(bodies[i], bodies[0]) {
					t.Errorf("round %d: %s's playlist differs from the owner's:\n%s\nowner:\n%s", round, nodes[i].name, bodies[i], bodies[0])
				}
				lags = append(lags, done[i].Sub(done[0]))
			}
		}
		// Every part of that playlist, byte for byte, with the owner's
		// headers, from every node.
		m = mediaPlaylist(t, bodies[0])
		uris := []string{}
		for _, p := range m.Parts {
			uris = append(uris, p.URI)
		}
		if len(m.Segments) > 0 {
			uris = append(uris, m.Segments[len(m.Segments)-1].URI)
		}
		for _, u := range uris {
			_, ob, oh := e2etest.Get(t, base(nodes[0])+u)
			for _, n := range nodes[1:] {
				code, nb, nh := e2etest.Get(t, base(n)+u)
				if code != http.StatusOK || !bytes.Equal(nb, ob) {
					t.Errorf("%s: %s: %d, %d bytes, owner %d bytes", n.name, u, code, len(nb), len(ob))
				}
				for _, k := range []string{"Cache-Control", "ETag", "Content-Type", "Access-Control-Allow-Origin"} {
					if nh.Get(k) != oh.Get(k) {
						t.Errorf("%s: %s: %s %q, owner's %q", n.name, u, k, nh.Get(k), oh.Get(k))
					}
				}
			}
		}
	}
	if len(lags) == 0 {
		t.Fatal("no blocking reload measured")
	}
	slices.Sort(lags)
	t.Logf("blocking reload through a non-owner released after the owner's: p50 %v, max %v (%d requests)",
		lags[len(lags)/2], lags[len(lags)-1], len(lags))
	// Loopback on a shared 2-core machine: a generous bound on the median.
	if lags[len(lags)/2] > 50*time.Millisecond {
		t.Errorf("median release lag %v", lags[len(lags)/2])
	}

	checkClusterView(t, nodes)

	if err := cmd.Wait(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, ffOut.String())
	}
	if err := <-readErr; err != nil {
		t.Fatalf("gohlslib through node 3: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(videoPTS) < 150 {
		t.Fatalf("gohlslib read %d video AUs through node 3", len(videoPTS))
	}
	for i := 1; i < len(videoPTS); i++ {
		if d := videoPTS[i] - videoPTS[i-1]; d < 2900 || d > 3100 {
			t.Fatalf("video AU %d: PTS step %d, want 3000 (30 fps): an access unit is missing", i, d)
		}
	}
	t.Logf("gohlslib read %d video AUs through node 3, none missing", len(videoPTS))
}
