// Package steering tests HLS Content Steering end to end: two shopcast
// processes fed one encoder, each a pathway of the other's multivariant
// playlist, read by independent parsers and by hls.js and Shaka Player in
// Chromium while the played node is killed with kill -9.
package steering

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/shopcast/shopcast/internal/e2etest"
	"github.com/shopcast/shopcast/steering"
)

// bin is the shopcast binary every test here runs, built once.
var bin e2etest.Builder

const (
	stream = "shop"
	ttl    = 2 * time.Second
)

// pair is two nodes serving the same stream, pathway "a" on the first and
// "b" on the second.
type pair struct {
	nodes [2]*e2etest.Process
}

// startPair starts two shopcast processes that both know both pathways.
// extra keys go to both.
func startPair(t testing.TB, extra map[string]string) *pair {
	t.Helper()
	// Two host names, as two origins have: players (Shaka) ban a failed
	// pathway by host name, port aside.
	httpA, httpB := e2etest.FreeAddr(t), freeAddrOn(t, "127.0.0.2")
	ps, _ := json.Marshal([]steering.Pathway{{ID: "a", URL: "http://" + httpA}, {ID: "b", URL: "http://" + httpB}})
	keys := map[string]string{
		"pathways": string(ps), "steering_ttl": ttl.String(), "steering_probe_timeout": "500ms",
	}
	for k, v := range extra {
		keys[k] = v
	}
	var p pair
	for i, h := range []string{httpA, httpB} {
		p.nodes[i] = e2etest.StartProcess(t, bin.Path(t), e2etest.ProcessConfig{HTTP: h, Keys: keys})
	}
	return &p
}

// teeFeed is one ffmpeg encoding a test pattern and a tone in real time
// with a fixed 2 s GOP (the target duration) and sending the same packets
// to every RTMP URL through the tee muxer; onfail=ignore keeps feeding the
// others when one node dies.
func teeFeed(t testing.TB, seconds int, rtmpURLs ...string) {
	t.Helper()
	var outs []string
	for _, u := range rtmpURLs {
		outs = append(outs, "[f=flv:onfail=ignore]"+u)
	}
	out := &e2etest.Buffer{}
	cmd := exec.Command("ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "warning",
		"-re", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", fmt.Sprint(seconds),
		"-map", "0:v", "-map", "1:a",
		"-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-pix_fmt", "yuv420p",
		"-g", "60", "-keyint_min", "60", "-sc_threshold", "0", "-b:v", "600k",
		"-c:a", "aac", "-b:a", "64k", "-ar", "48000", "-ac", "2",
		"-flags", "+global_header", "-f", "tee", strings.Join(outs, "|"))
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting ffmpeg (make deps installs it): %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("ffmpeg output:\n%s", e2etest.Tail(out.String(), 3000))
		}
	})
}

// feedPair starts the tee feed to both nodes and waits for both
// multivariant playlists to list a variant.
func (p *pair) feed(t testing.TB, seconds int) {
	t.Helper()
	teeFeed(t, seconds, p.nodes[0].RTMP+"/live/"+stream, p.nodes[1].RTMP+"/live/"+stream)
	for _, n := range p.nodes {
		e2etest.WaitUntil(t, 40*time.Second, n.HTTP+" multivariant playlist", func() bool {
			code, body, _ := get(n.HTTP + "/live/" + stream + "/index.m3u8")
			return code == 200 && strings.Contains(body, "#EXT-X-STREAM-INF")
		})
	}
}

// freeAddrOn is a free port on a loopback address of its own.
func freeAddrOn(t testing.TB, ip string) string {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// get fetches url with a 5 s timeout.
func get(url string) (int, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// manifest fetches and decodes a node's steering manifest.
func manifest(t *testing.T, base, query string) (steering.Manifest, http.Header) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/live/"+stream+"/steering.json"+query, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("steering manifest: %d", resp.StatusCode)
	}
	var m steering.Manifest
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatalf("steering manifest: %v", err)
	}
	return m, resp.Header
}

// alignedKeys turn on the redundant ingest's aligned timeline
// (docs/redundancy.md): the two nodes then number the same media alike,
// which a seamless pathway switch needs.
func alignedKeys() map[string]string {
	return map[string]string{"aligned_timeline": "true"}
}

func bytesReader(s string) *strings.Reader { return strings.NewReader(s) }
