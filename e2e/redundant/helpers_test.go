// Package redundant tests redundant ingest on the aligned timeline
// (docs/redundancy.md): one encoder pushing one feed to two shopcast nodes,
// whose playlists must number the same media alike.
package redundant

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"
	"github.com/bluenviron/gohlslib/v2/pkg/playlist"

	"github.com/shopcast/shopcast/internal/e2etest"
	"github.com/shopcast/shopcast/internal/server"
)

// gop is the target duration and the encoders' keyframe interval.
const gop = 2 * time.Second

func needFFmpeg(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end")
	}
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Fatal("ffmpeg is required (make deps installs it)")
	}
	return ffmpeg
}

// startNode starts a shopcast node on the aligned timeline.
func startNode(t *testing.T) *e2etest.Server {
	t.Helper()
	cfg := nodeConfig(t)
	return e2etest.Start(t, cfg)
}

func nodeConfig(t *testing.T) server.Config {
	cfg := e2etest.Config(t)
	cfg.AlignedTimeline = true
	cfg.TargetDuration = gop
	cfg.Record = false
	return cfg
}

func get(ctx context.Context, url string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// mustGet fetches url, which must answer 200.
func mustGet(t *testing.T, url string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	code, body, err := get(ctx, url)
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET %s: %d %v", url, code, err)
	}
	return body
}

// segView is what a media playlist says of one segment.
type segView struct {
	uri      string
	pdt      time.Time
	gap      bool
	complete bool
	parts    []*playlist.MediaPart
}

// nodeView is one node's media playlist, by MSN.
type nodeView struct {
	body  []byte
	media *playlist.Media
	segs  map[int64]segView
	first int64
	last  int64 // the MSN of the last segment listed, open or not
	init  string
}

// readNode reads a node's media playlist with gohlslib's parser.
func readNode(t *testing.T, base string) nodeView {
	t.Helper()
	body := mustGet(t, base+"stream.m3u8")
	pl, err := playlist.Unmarshal(body)
	if err != nil {
		t.Fatalf("gohlslib refuses %sstream.m3u8: %v\n%s", base, err, body)
	}
	mp, ok := pl.(*playlist.Media)
	if !ok {
		t.Fatalf("%sstream.m3u8 is a %T", base, pl)
	}
	v := nodeView{body: body, media: mp, segs: map[int64]segView{}, first: int64(mp.MediaSequence)}
	if mp.Map != nil {
		v.init = mp.Map.URI
	}
	msn := v.first
	for _, seg := range mp.Segments {
		sv := segView{uri: seg.URI, gap: seg.Gap, complete: true, parts: seg.Parts}
		if seg.DateTime != nil {
			sv.pdt = *seg.DateTime
		}
		if seg.URI != fmt.Sprintf("seg%d.m4s", msn) {
			t.Fatalf("%s: segment %s where MSN %d is: numbers not contiguous\n%s", base, seg.URI, msn, body)
		}
		v.segs[msn] = sv
		msn++
	}
	if len(mp.Parts) > 0 {
		v.segs[msn] = segView{parts: mp.Parts}
		msn++
	}
	v.last = msn - 1
	return v
}

// media is the video of a part or segment as mp4ff reads it, and its emsg
// boxes.
type media struct {
	tfdt    uint64 // of the first video fragment
	samples int    // video samples
	emsgs   []string
}

// readMedia decodes a part or segment; video is the video track's ID.
func readMedia(t *testing.T, body []byte, video uint32) media {
	t.Helper()
	f, err := mp4.DecodeFile(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("mp4ff cannot decode the media: %v", err)
	}
	var m media
	found := false
	for _, seg := range f.Segments {
		for _, fr := range seg.Fragments {
			for _, e := range fr.Emsgs {
				m.emsgs = append(m.emsgs, fmt.Sprintf("v%d ts=%d pt=%d dur=%d id=%d scheme=%s value=%s data=%x",
					e.Version, e.TimeScale, e.PresentationTime, e.EventDuration, e.ID, e.SchemeIDURI, e.Value, e.MessageData))
			}
			if fr.Moof == nil {
				continue
			}
			for _, tf := range fr.Moof.Trafs {
				if tf.Tfhd.TrackID != video || tf.Tfdt == nil {
					continue
				}
				if !found {
					m.tfdt, found = tf.Tfdt.BaseMediaDecodeTime(), true
				}
				for _, tr := range tf.Truns {
					m.samples += int(tr.SampleCount())
				}
			}
		}
	}
	if !found {
		t.Fatal("no video fragment in the media")
	}
	return m
}

// videoTrack returns the ID of the video track of an init segment.
func videoTrack(t *testing.T, body []byte) uint32 {
	t.Helper()
	f, err := mp4.DecodeFile(bytes.NewReader(body))
	if err != nil || f.Moov == nil {
		t.Fatalf("mp4ff cannot decode the init segment: %v", err)
	}
	for _, trak := range f.Moov.Traks {
		if trak.Mdia != nil && trak.Mdia.Hdlr != nil && trak.Mdia.Hdlr.HandlerType == "vide" {
			return trak.Tkhd.TrackID
		}
	}
	t.Fatal("no video track in the init segment")
	return 0
}

// comparer checks, poll after poll, that two nodes serve the same numbers
// for the same media: every segment and part listed complete on both is
// fetched once from each and compared.
type comparer struct {
	t          *testing.T
	bases      [2]string
	video      [2]map[string]uint32 // by init URI
	done       map[string]bool      // "seg1234" and "1234/5" compared
	segs       int
	parts      int
	maxOff     uint64 // the largest tfdt difference seen, in 90 kHz ticks
	emsgs      int
	gaps       [2]int // gap segments and parts seen listed, per node
	playlists  [][]byte
	lastPolled time.Time
	// lossy lets node 2 lack media node 1 has: fewer samples, a later
	// first tfdt (never more, never earlier). from, when set, is the
	// first MSN compared.
	lossy bool
	from  int64
}

func newComparer(t *testing.T, a, b string) *comparer {
	return &comparer{t: t, bases: [2]string{a, b}, video: [2]map[string]uint32{{}, {}}, done: map[string]bool{}}
}

func (c *comparer) videoOf(i int, v nodeView) uint32 {
	id, ok := c.video[i][v.init]
	if !ok {
		id = videoTrack(c.t, mustGet(c.t, c.bases[i]+v.init))
		c.video[i][v.init] = id
	}
	return id
}

// frame90k is one frame at 30 fps in 90 kHz ticks: "the same media time
// within one frame".
const frame90k = 3000

// poll reads both playlists and compares what they both list. It returns
// the views.
func (c *comparer) poll() (a, b nodeView) {
	t := c.t
	t.Helper()
	views := [2]nodeView{readNode(t, c.bases[0]), readNode(t, c.bases[1])}
	if time.Since(c.lastPolled) > 3*time.Second {
		c.playlists = append(c.playlists, views[0].body, views[1].body)
		c.lastPolled = time.Now()
	}
	for i, v := range views {
		for _, sv := range v.segs {
			if sv.gap {
				c.gaps[i]++
			}
			for _, p := range sv.parts {
				if p.Gap {
					c.gaps[i]++
				}
			}
		}
	}
	for msn, s0 := range views[0].segs {
		s1, ok := views[1].segs[msn]
		if !ok || msn < c.from {
			continue
		}
		if s0.complete && s1.complete && !s0.pdt.Equal(s1.pdt) {
			t.Errorf("MSN %d: PROGRAM-DATE-TIME %v on node 1, %v on node 2", msn, s0.pdt, s1.pdt)
		}
		key := fmt.Sprintf("seg%d", msn)
		if s0.complete && s1.complete && !s0.gap && !s1.gap && !c.done[key] {
			c.done[key] = true
			c.compare(key, views, s0.uri, s1.uri)
			c.segs++
		}
		for idx := range min(len(s0.parts), len(s1.parts)) {
			p0, p1 := s0.parts[idx], s1.parts[idx]
			if p0.Gap || p1.Gap {
				continue
			}
			key := fmt.Sprintf("%d/%d", msn, idx)
			if c.done[key] {
				continue
			}
			c.done[key] = true
			if p0.URI != p1.URI {
				t.Errorf("MSN %d part %d: %s on node 1, %s on node 2", msn, idx, p0.URI, p1.URI)
			}
			c.compare(key, views, p0.URI, p1.URI)
			c.parts++
		}
	}
	return views[0], views[1]
}

func (c *comparer) compare(what string, views [2]nodeView, uri0, uri1 string) {
	t := c.t
	m0 := readMedia(t, mustGet(t, c.bases[0]+uri0), c.videoOf(0, views[0]))
	m1 := readMedia(t, mustGet(t, c.bases[1]+uri1), c.videoOf(1, views[1]))
	if c.lossy && (m1.samples < m0.samples || m1.tfdt > m0.tfdt) {
		// What node 2 lacked: it must still start within the same slot.
		if m1.tfdt < m0.tfdt || m1.samples > m0.samples {
			t.Errorf("%s: node 2 has %d samples from tfdt %d, node 1 %d from %d", what, m1.samples, m1.tfdt, m0.samples, m0.tfdt)
		}
		return
	}
	off := max(m0.tfdt, m1.tfdt) - min(m0.tfdt, m1.tfdt)
	c.maxOff = max(c.maxOff, off)
	if off > frame90k {
		t.Errorf("%s: video tfdt %d on node 1, %d on node 2: more than a frame apart", what, m0.tfdt, m1.tfdt)
	}
	if d := m0.samples - m1.samples; d > 1 || d < -1 {
		t.Errorf("%s: %d video samples on node 1, %d on node 2", what, m0.samples, m1.samples)
	}
	if strings.Join(m0.emsgs, "\n") != strings.Join(m1.emsgs, "\n") {
		t.Errorf("%s: emsg boxes differ\nnode 1: %q\nnode 2: %q", what, m0.emsgs, m1.emsgs)
	}
	c.emsgs += len(m0.emsgs)
}

// cueLines returns a playlist's EXT-X-DATERANGE lines of cue id.
func cueLines(body []byte, id string) []string {
	var out []string
	for _, l := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(l, "#EXT-X-DATERANGE:") && strings.Contains(l, `ID="`+id+`"`) {
			out = append(out, l)
		}
	}
	return out
}

// postCue posts a product cue to a node and returns the media time the node
// placed it at.
func postCue(t *testing.T, base, stream, id, at string, durationMs int) int64 {
	t.Helper()
	body := fmt.Sprintf(`{"v":1,"id":%q,"type":"product","product":{"sku":"SNK-42","title":"Court Classic Sneaker",`+
		`"price":{"amount":"89.90","currency":"EUR"},"image_url":"https://cdn.example.com/p/snk-42.jpg",`+
		`"url":"https://shop.example.com/p/snk-42"},"at":%s,"duration_ms":%d}`, id, at, durationMs)
	resp, err := http.Post(base+"/api/v1/streams/"+stream+"/cues", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST cue %s to %s: %d %s", id, base, resp.StatusCode, out)
	}
	var created struct {
		MediaTimeMs int64 `json:"media_time_ms"`
	}
	if err := json.Unmarshal(out, &created); err != nil {
		t.Fatal(err)
	}
	return created.MediaTimeMs
}

var alignedMetric = regexp.MustCompile(`(?m)^shopcast_aligned_missing_total\{kind="([a-z_]+)",stream="([^"]+)"\} ([0-9.e+]+)$`)

// missing returns a node's shopcast_aligned_missing_total of stream, by
// kind.
func missing(t *testing.T, srv *e2etest.Server, stream string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, m := range alignedMetric.FindAllStringSubmatch(string(mustGet(t, srv.HTTP+"/metrics")), -1) {
		if m[2] == stream {
			v, _ := strconv.ParseFloat(m[3], 64)
			out[m[1]] = v
		}
	}
	return out
}

// strictCheck has hls-parser in strict mode (npm, pinned in package.json;
// e2e/testdata/hls_strict.mjs) read each playlist and fails the test for
// any it refuses.
func strictCheck(t *testing.T, playlists [][]byte) {
	t.Helper()
	missing := func(format string, a ...any) {
		t.Helper()
		msg := fmt.Sprintf(format, a...) + " (make deps installs it)"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("node is not installed: %v", err)
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "node_modules", "hls-parser", "package.json")); err != nil {
		missing("npm hls-parser is not installed: %v", err)
	}
	dir := t.TempDir()
	args := []string{filepath.Join(root, "e2e", "testdata", "hls_strict.mjs"), root}
	byFile := map[string][]byte{}
	for i, p := range playlists {
		f := filepath.Join(dir, fmt.Sprintf("%03d.m3u8", i))
		if err := os.WriteFile(f, p, 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, f)
		byFile[f] = p
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, node, args...).Output()
	if err != nil {
		t.Fatalf("hls-parser: %v", err)
	}
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		var r struct {
			File  string `json:"file"`
			OK    bool   `json:"ok"`
			Error string `json:"error"`
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("hls-parser output %q: %v", sc.Text(), err)
		}
		n++
		if !r.OK {
			t.Errorf("hls-parser strict refuses a playlist: %s\n%s", r.Error, byFile[r.File])
		}
	}
	if n != len(playlists) {
		t.Fatalf("hls-parser read %d of %d playlists", n, len(playlists))
	}
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	e2etest.WaitUntil(t, d, what, cond)
}
