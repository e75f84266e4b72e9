package live

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	m3u8 "github.com/Eyevinn/hls-m3u8/m3u8"
	"github.com/Eyevinn/mp4ff/mp4"
	"github.com/bluenviron/gohlslib/v2/pkg/playlist"
	"github.com/bogem/id3v2/v2"

	"github.com/shopcast/shopcast/internal/e2etest"
	"github.com/shopcast/shopcast/internal/server"
	"github.com/shopcast/shopcast/internal/testpub"
)

// cueDoc is testdata/cues_example.json with another id, sku, `at` and
// duration (0: open-ended).
func cueDoc(t *testing.T, id string, at any, durMs int64) []byte {
	t.Helper()
	b, err := os.ReadFile("../../testdata/cues_example.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	doc["id"] = id
	doc["at"] = at
	doc["product"].(map[string]any)["sku"] = "SKU-" + id
	if durMs > 0 {
		doc["duration_ms"] = durMs
	} else {
		delete(doc, "duration_ms")
	}
	out, _ := json.Marshal(doc)
	return out
}

// cueReply is the API's answer about one cue.
type cueReply struct {
	State           string `json:"state"`
	MediaTimeMs     int64  `json:"media_time_ms"`
	ProgramDateTime string `json:"program_date_time"`
	EndMediaTimeMs  *int64 `json:"end_media_time_ms"`
}

// callAPI sends one API request and returns the status, body and headers.
func callAPI(t *testing.T, method, url, token string, body []byte) (int, []byte, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(method, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header
}

// mustCue sends a request that must answer want, and decodes the cue.
func mustCue(t *testing.T, method, url string, body []byte, want int) cueReply {
	t.Helper()
	code, b, _ := callAPI(t, method, url, "", body)
	if code != want {
		t.Fatalf("%s %s: %d %s, want %d", method, url, code, b, want)
	}
	var r cueReply
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("%s %s: %v: %s", method, url, err, b)
	}
	return r
}

// cueCase is a cue posted during TestE2ECueCarriage and what must come of it.
type cueCase struct {
	id    string
	at    any // "now", media ms (int64), or wall clock (time.Time)
	durMs int64
	// The newest part listed before the POST, and the one after the 201
	// plus one: a cue whose time was published before the POST lands in
	// the first part published after it, in (after, upTo].
	after, upTo int
	deleted     bool
	reply       cueReply
	endReply    cueReply
}

// TestE2ECueCarriage posts cues of every kind while a publisher streams,
// follows the stream as an LL-HLS player does, and checks with parsers
// shopcast does not share code with (mp4ff, hls-m3u8, bogem/id3v2) that
// each cue is where a player looks for it:
//   - its emsg in the part whose decode-time range holds the cue time (or,
//     for a time already published, the first part after the POST), with
//     presentation_time equal to the requested media time (for "now", a
//     video sample's PTS), the same box in the parent segment, and
//     re-sent at the start of every segment while the cue is active;
//   - its EXT-X-DATERANGE, whose START-DATE maps through
//     EXT-X-PROGRAM-DATE-TIME to the emsg's time within 1 ms, announced
//     ahead of the start for a scheduled cue;
//   - _HLS_skip=v2 delta updates that leave out the date ranges starting in
//     skipped segments and list the removed ones;
//   - a viewer that joins mid-cue and reads only the newest segment.
func TestE2ECueCarriage(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	// 1 s segments (the fixture's GOP) and an 8-segment window, so that
	// delta updates skip segments and date ranges leave the window within
	// a few seconds; the publisher sends at twice real time.
	srv := startServer(t, func(c *server.Config) {
		c.GracePeriod, c.TargetDuration, c.WindowSegments = time.Second, time.Second, 8
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	go func() {
		_ = testpub.Publish(ctx, srv.RTMP+"/live/cues", fixture, testpub.Options{Loops: 6, Speed: 2})
	}()
	base := srv.HTTP + "/live/cues/"
	api := srv.HTTP + "/api/v1/streams/cues/cues"
	e2etest.WaitUntil(t, 15*time.Second, "the stream to appear", func() bool {
		code, _, _ := e2etest.Get(t, base+"stream.m3u8")
		return code == 200
	})
	f := newCueFollower(t, base)
	fctx, stopFollow := context.WithCancel(ctx)
	followed := make(chan struct{})
	go func() { defer close(followed); f.run(fctx) }()
	defer func() { stopFollow(); <-followed }()
	f.waitEnd(t, 1500*time.Millisecond, 15*time.Second)

	post := func(c *cueCase) {
		t.Helper()
		at := c.at
		if w, ok := at.(time.Time); ok {
			at = w.UTC().Format(time.RFC3339Nano)
		}
		c.after = newestPart(t, base)
		c.reply = mustCue(t, http.MethodPost, api, cueDoc(t, c.id, at, c.durMs), http.StatusCreated)
		c.upTo = newestPart(t, base) + 1
	}
	nowOpen := &cueCase{id: "now-open", at: "now"}
	nowDur := &cueCase{id: "now-dur", at: "now", durMs: 1500}
	post(nowOpen)
	post(nowDur)
	live := time.Duration(nowDur.reply.MediaTimeMs) * time.Millisecond
	livePDT, err := time.Parse(time.RFC3339Nano, nowDur.reply.ProgramDateTime)
	if err != nil {
		t.Fatal(err)
	}
	past := &cueCase{id: "media-past", at: int64(200), durMs: 2500}
	post(past)
	// Starts in a segment that delta updates skip later on, and is active
	// when the late joiner comes.
	future := &cueCase{id: "media-future", at: (live + 2500*time.Millisecond).Milliseconds(), durMs: 20000}
	post(future)
	wallFuture := &cueCase{id: "wall-future", at: livePDT.Add(3 * time.Second)}
	post(wallFuture)
	wallDur := &cueCase{id: "wall-dur", at: livePDT.Add(1234 * time.Millisecond), durMs: 700}
	post(wallDur)
	cancelled := &cueCase{id: "wall-cancel", at: livePDT.Add(30 * time.Second), durMs: 1000}
	post(cancelled)
	if r := mustCue(t, http.MethodDelete, api+"/wall-cancel", nil, http.StatusOK); r.State != "cancelled" {
		t.Errorf("DELETE of a scheduled cue: state %q, want cancelled", r.State)
	}
	// Playlists read from the one after the request in flight on.
	f.mu.Lock()
	cancelledFrom := len(f.playlists) + 1
	f.mu.Unlock()
	cues := []*cueCase{nowOpen, nowDur, past, future, wallFuture, wallDur}
	for _, c := range cues {
		if c.reply.State == "" || c.reply.ProgramDateTime == "" {
			t.Errorf("%s: reply %+v", c.id, c.reply)
		}
		if ms, ok := c.at.(int64); ok && c.reply.MediaTimeMs != ms {
			t.Errorf("%s: media_time_ms %d, posted %d", c.id, c.reply.MediaTimeMs, ms)
		}
	}

	// The open-ended cue ends when deleted: an END emsg, and an END-DATE.
	f.waitEnd(t, live+3*time.Second, 15*time.Second)
	nowOpen.endReply = mustCue(t, http.MethodDelete, api+"/now-open", nil, http.StatusOK)
	nowOpen.deleted = true
	if nowOpen.endReply.State != "ended" || nowOpen.endReply.EndMediaTimeMs == nil {
		t.Fatalf("DELETE of an active cue: %+v", nowOpen.endReply)
	}

	checkDeltaUpdates(t, base, f, map[string]bool{past.id: true, cancelled.id: true})

	// The late joiner reads only the newest segment and the newest parts
	// of the open segment, while media-future is active.
	f.waitEnd(t, live+13*time.Second, 20*time.Second)
	checkLateJoin(t, base, f.videoID, future.id)

	stopFollow()
	<-followed
	if len(f.errs) > 0 {
		t.Fatalf("follower: %s", strings.Join(f.errs, "\n"))
	}
	if f.timescale != 90000 {
		t.Errorf("video timescale %d", f.timescale)
	}
	for _, c := range cues {
		checkCueEmsgs(t, f, c)
	}
	checkDateRanges(t, f, cues, cancelled.id, cancelledFrom)
}

// emsgAt is one emsg of a cue found in a part.
type emsgAt struct {
	part *cuePart
	e    *mp4.EmsgBox
}

// cueEmsgs returns, in part order, the emsgs whose ID3 tag carries cue id:
// its start emsgs and its END emsgs. Undecodable tags are errors.
func cueEmsgs(t *testing.T, f *cueFollower, id string) (starts, ends []emsgAt) {
	t.Helper()
	ns := make([]int, 0, len(f.parts))
	for n := range f.parts {
		ns = append(ns, n)
	}
	slices.Sort(ns)
	for _, n := range ns {
		p := f.parts[n]
		for _, e := range p.emsgs {
			if e.SchemeIDURI != "https://aomedia.org/emsg/ID3" || e.Version != 1 {
				t.Errorf("part%d: emsg scheme %q version %d", n, e.SchemeIDURI, e.Version)
				continue
			}
			v, err := id3Cue(e)
			if err != nil {
				t.Errorf("part%d: bogem/id3v2 cannot read the emsg's tag: %v", n, err)
				continue
			}
			var wire struct {
				ID      string `json:"id"`
				End     bool   `json:"end"`
				Type    string `json:"type"`
				Product struct {
					SKU string `json:"sku"`
				} `json:"product"`
			}
			if err := json.Unmarshal([]byte(v), &wire); err != nil {
				t.Errorf("part%d: TXXX value is not JSON: %v: %q", n, err, v)
				continue
			}
			if wire.ID != id {
				continue
			}
			if wire.End {
				ends = append(ends, emsgAt{p, e})
				continue
			}
			if wire.Type != "product" || wire.Product.SKU != "SKU-"+id {
				t.Errorf("%s: ID3 cue %q", id, v)
			}
			starts = append(starts, emsgAt{p, e})
		}
	}
	return starts, ends
}

// checkCueEmsgs checks the in-band carriage of one cue.
func checkCueEmsgs(t *testing.T, f *cueFollower, c *cueCase) {
	t.Helper()
	starts, ends := cueEmsgs(t, f, c.id)
	if len(starts) == 0 {
		t.Errorf("%s: no emsg in any part", c.id)
		return
	}
	first := starts[0]
	e, p := first.e, first.part
	const ms = 90 // ticks of the 90 kHz video timescale
	if e.TimeScale != f.timescale {
		t.Errorf("%s: emsg timescale %d, video %d", c.id, e.TimeScale, f.timescale)
	}
	switch at := c.at.(type) {
	case int64:
		if e.PresentationTime != uint64(at)*ms {
			t.Errorf("%s: presentation_time %d, requested %d ms", c.id, e.PresentationTime, at)
		}
	case string: // "now": the frame that reached the packager, frame-exact
		found := false
		for _, q := range f.parts {
			found = found || slices.Contains(q.pts, e.PresentationTime)
		}
		if !found {
			t.Errorf("%s: presentation_time %d is no video sample's PTS", c.id, e.PresentationTime)
		}
	}
	if d := int64(e.PresentationTime) - c.reply.MediaTimeMs*ms; d < 0 || d >= ms {
		t.Errorf("%s: presentation_time %d, API media_time_ms %d", c.id, e.PresentationTime, c.reply.MediaTimeMs)
	}
	wantDur := uint32(0xFFFFFFFF)
	if c.durMs > 0 {
		wantDur = uint32(c.durMs * ms)
	}
	if e.EventDuration != wantDur {
		t.Errorf("%s: event_duration %d, want %d", c.id, e.EventDuration, wantDur)
	}
	// The right part: the one whose decode times hold the cue time, unless
	// that part was published before the POST; then the first part
	// published after it.
	var holder *cuePart
	for _, q := range f.parts {
		if e.PresentationTime >= q.tfdt && e.PresentationTime < q.tfdt+q.dur {
			holder = q
		}
	}
	switch {
	case holder != nil && holder.n >= c.upTo: // not yet published at the 201
		if p != holder {
			t.Errorf("%s: emsg at %d in part%d [%d, %d), want part%d [%d, %d) which holds its time",
				c.id, e.PresentationTime, p.n, p.tfdt, p.tfdt+p.dur, holder.n, holder.tfdt, holder.tfdt+holder.dur)
		}
	case holder != nil && holder.n > c.after: // published during the POST: either
		if p != holder && (p.n < holder.n || p.n > c.upTo) {
			t.Errorf("%s: emsg at %d in part%d, want part%d (its time) or the first part after the POST (up to part%d)",
				c.id, e.PresentationTime, p.n, holder.n, c.upTo)
		}
	default: // a time already published, or before what the follower read
		if p.n <= c.after || p.n > c.upTo || e.PresentationTime >= p.tfdt {
			t.Errorf("%s (a past time): first emsg in part%d [%d, %d), want the first part after the POST, part%d..part%d",
				c.id, p.n, p.tfdt, p.tfdt+p.dur, c.after+1, c.upTo)
		}
	}
	if _, ok := f.parts[p.n-1]; !ok {
		t.Errorf("%s: the part before part%d was not read: cannot tell the emsg came first there", c.id, p.n)
	}

	// The end: the END emsg, once, where the deletion put it.
	end := uint64(0)
	if c.durMs > 0 {
		end = e.PresentationTime + uint64(c.durMs)*ms
	}
	if c.deleted {
		if len(ends) != 1 {
			t.Errorf("%s: %d END emsgs, want 1", c.id, len(ends))
		} else {
			ee := ends[0]
			end = ee.e.PresentationTime
			if d := int64(end) - *c.endReply.EndMediaTimeMs*ms; d < 0 || d >= ms {
				t.Errorf("%s: END presentation_time %d, API end_media_time_ms %d", c.id, end, *c.endReply.EndMediaTimeMs)
			}
			if end < ee.part.tfdt || end >= ee.part.tfdt+ee.part.dur {
				t.Errorf("%s: END emsg at %d in part%d [%d, %d)", c.id, end, ee.part.n, ee.part.tfdt, ee.part.tfdt+ee.part.dur)
			}
			if ee.e.ID == e.ID {
				t.Errorf("%s: END emsg has the start's id %d", c.id, e.ID)
			}
			checkInSegment(t, f, c.id, ee)
		}
	} else if len(ends) > 0 {
		t.Errorf("%s: END emsg for a cue not deleted", c.id)
	}

	// Re-sends: the first part of every segment while the cue is active
	// carries the same box (same id: players drop the duplicate); no other
	// part carries it again.
	for _, s := range starts[1:] {
		if s.part.idx != 0 {
			t.Errorf("%s: emsg again in part%d, not the first of its segment", c.id, s.part.n)
		}
		if !reflect.DeepEqual(s.e, e) {
			t.Errorf("%s: re-sent emsg in part%d differs: %+v, first %+v", c.id, s.part.n, s.e, e)
		}
	}
	for _, q := range f.parts {
		active := q.n > p.n && (end == 0 || end > q.tfdt)
		if q.idx != 0 || !active {
			continue
		}
		if !slices.ContainsFunc(starts, func(s emsgAt) bool { return s.part == q }) {
			t.Errorf("%s: active, but not re-sent at the start of segment %d (part%d)", c.id, q.msn, q.n)
		}
	}
	for _, s := range starts {
		if end != 0 && s.part.n != p.n && s.part.tfdt >= end {
			t.Errorf("%s: re-sent in part%d after its end", c.id, s.part.n)
		}
		checkInSegment(t, f, c.id, s)
	}
}

// checkInSegment checks that the parent segment of a part carries the same
// emsg (RFC 8216bis: a part and its parent segment carry the same data).
func checkInSegment(t *testing.T, f *cueFollower, id string, at emsgAt) {
	t.Helper()
	seg, ok := f.segs[at.part.msn]
	if !ok {
		return // the follower stopped before the segment was complete
	}
	if !slices.ContainsFunc(seg.emsgs, func(e *mp4.EmsgBox) bool { return reflect.DeepEqual(e, at.e) }) {
		t.Errorf("%s: the emsg of part%d is not in its segment seg%d.m4s", id, at.part.n, at.part.msn)
	}
}

// mediaOf maps a date to media time (video timescale) through the
// EXT-X-PROGRAM-DATE-TIME tags hls-m3u8 read: the segment (or, for a
// segment listed with parts, its first part: hls-m3u8 v0.6.5 hangs the tag
// there) with the latest date not after it, whose media start the
// follower read in its boxes.
func mediaOf(f *cueFollower, pl *m3u8.MediaPlaylist, date time.Time) (int64, bool) {
	type anchor struct {
		pdt  time.Time
		tfdt uint64
	}
	var anchors []anchor
	for _, seg := range pl.GetAllSegments() {
		if s, ok := f.segs[int(seg.SeqId)]; ok && !seg.ProgramDateTime.IsZero() {
			anchors = append(anchors, anchor{seg.ProgramDateTime, s.tfdt})
		}
	}
	for _, ps := range pl.PartialSegments {
		m := partNum.FindStringSubmatch(ps.URI)
		if m == nil || ps.ProgramDateTime.IsZero() {
			continue
		}
		n, _ := strconv.Atoi(m[1])
		if p, ok := f.parts[n]; ok && p.idx == 0 {
			anchors = append(anchors, anchor{ps.ProgramDateTime, p.tfdt})
		}
	}
	var best *anchor
	for i, a := range anchors {
		if best == nil || !a.pdt.After(date) && (best.pdt.After(date) || a.pdt.After(best.pdt)) {
			best = &anchors[i]
		}
	}
	if best == nil {
		return 0, false
	}
	ticks := date.Sub(best.pdt).Nanoseconds() * int64(f.timescale) / 1e9
	return int64(best.tfdt) + ticks, true
}

// checkDateRanges checks the EXT-X-DATERANGEs of every full playlist the
// follower read, parsed by hls-m3u8.
func checkDateRanges(t *testing.T, f *cueFollower, cues []*cueCase, cancelledID string, cancelledFrom int) {
	t.Helper()
	byID := map[string]*cueCase{}
	starts := map[string]*mp4.EmsgBox{}
	firstPart := map[string]int{}
	for _, c := range cues {
		byID[c.id] = c
		s, _ := cueEmsgs(t, f, c.id)
		if len(s) > 0 {
			starts[c.id], firstPart[c.id] = s[0].e, s[0].part.n
		}
	}
	seen := map[string]bool{}
	ahead := false
	for i, body := range f.playlists {
		pl, _ := decodeM3U8(t, body)
		if pl.ServerControl == nil || !pl.ServerControl.CanSkipDateRanges {
			t.Fatalf("no CAN-SKIP-DATERANGES=YES:\n%s", body)
		}
		for _, dr := range pl.DateRanges {
			if dr.ID == cancelledID && i >= cancelledFrom {
				t.Errorf("cancelled cue %s still listed after its DELETE", dr.ID)
			}
			c, ok := byID[dr.ID]
			if !ok {
				continue
			}
			if dr.Class != "com.shopcast.product" {
				t.Errorf("%s: CLASS %q", dr.ID, dr.Class)
			}
			e := starts[dr.ID]
			if e == nil {
				continue
			}
			seen[dr.ID] = true
			if dr.StartDate.IsZero() {
				line := regexp.MustCompile(`(?m)^#EXT-X-DATERANGE:ID="` + dr.ID + `".*$`).Find(body)
				t.Errorf("hls-m3u8 read no START-DATE in %s", line)
				continue
			}
			if media, ok := mediaOf(f, pl, dr.StartDate); ok {
				if d := media - int64(e.PresentationTime); d < -90 || d > 90 {
					t.Errorf("%s: START-DATE %s maps to media %d through PROGRAM-DATE-TIME, emsg says %d (%.2f ms apart)",
						dr.ID, dr.StartDate.Format(time.RFC3339Nano), media, e.PresentationTime, float64(d)/90)
				}
			}
			if c.durMs > 0 && (dr.Duration == nil || *dr.Duration != float64(c.durMs)/1000) {
				t.Errorf("%s: DURATION %v, want %v s", dr.ID, dr.Duration, float64(c.durMs)/1000)
			}
			if c.deleted && dr.EndDate != nil {
				if media, ok := mediaOf(f, pl, *dr.EndDate); ok {
					if d := media - *c.endReply.EndMediaTimeMs*90; d < -90 || d > 180 {
						t.Errorf("%s: END-DATE maps to media %d, API end %d ms", dr.ID, media, *c.endReply.EndMediaTimeMs)
					}
				}
			}
			// A scheduled cue is announced before the part that starts it.
			if dr.ID == "wall-future" && !bytes.Contains(body, fmt.Appendf(nil, `"part%d.m4s"`, firstPart[dr.ID])) {
				ahead = true
			}
		}
	}
	for _, c := range cues {
		if !seen[c.id] {
			t.Errorf("%s: no EXT-X-DATERANGE in any playlist read", c.id)
		}
	}
	if !ahead {
		t.Error("wall-future: its DATERANGE did not appear before the part that starts it")
	}
}

// checkDeltaUpdates reads full and _HLS_skip=v2 playlists of the same
// version until it has seen: skipped segments holding the start of a date
// range that the delta update then leaves out, and each id of wantRemoved
// in RECENTLY-REMOVED-DATERANGES once its date range left the full
// playlist (RFC 8216bis 4.4.5.2, 6.2.5.1).
func checkDeltaUpdates(t *testing.T, base string, f *cueFollower, wantRemoved map[string]bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	removedSeen := map[string]bool{}
	skippedStart := false
	msn, part := -1, -1
	for time.Now().Before(deadline) {
		url := base + "stream.m3u8"
		if msn >= 0 {
			url = fmt.Sprintf("%s?_HLS_msn=%d&_HLS_part=%d", url, msn, part)
		}
		sep := "?"
		if msn >= 0 {
			sep = "&"
		}
		_, full, _ := e2etest.Get(t, url)
		_, delta, _ := e2etest.Get(t, url+sep+"_HLS_skip=v2")
		// Next: one part further, as a player asks.
		if m, err := playlist.Unmarshal(full); err == nil {
			mp := m.(*playlist.Media)
			msn, part = mp.MediaSequence+len(mp.Segments), len(mp.Parts)
		}
		if versionKey(full) != versionKey(delta) {
			continue // published between the two requests
		}
		fp, _ := decodeM3U8(t, full)
		dp, removed := decodeM3U8(t, delta)
		skipped := int(dp.SkippedSegments())
		if skipped == 0 {
			continue
		}
		// Where the first segment the delta update lists starts.
		kept := dp.Segments[0].ProgramDateTime
		if kept.IsZero() || !kept.Equal(fp.Segments[skipped].ProgramDateTime) {
			t.Fatalf("delta update's first segment: %v, full playlist's segment %d: %v", kept, skipped, fp.Segments[skipped].ProgramDateTime)
		}
		fullIDs := map[string]bool{}
		var want []string
		for _, dr := range fp.DateRanges {
			fullIDs[dr.ID] = true
			if !dr.StartDate.Before(kept) {
				want = append(want, dr.ID)
			} else if !dr.StartDate.Before(fp.Segments[0].ProgramDateTime) {
				skippedStart = true
			}
		}
		var got []string
		for _, dr := range dp.DateRanges {
			got = append(got, dr.ID)
		}
		slices.Sort(want)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			var starts []string
			for _, dr := range fp.DateRanges {
				starts = append(starts, dr.ID+"@"+dr.StartDate.Format(time.RFC3339Nano))
			}
			t.Errorf("delta update (%d segments skipped, kept from %s) lists date ranges %q, want %q (full: %q)\n%s\nfull:\n%s",
				skipped, kept.Format(time.RFC3339Nano), got, want, starts, delta, full)
		}
		for _, id := range removed {
			if fullIDs[id] {
				t.Errorf("RECENTLY-REMOVED-DATERANGES has %s, still in the playlist", id)
			}
			removedSeen[id] = true
		}
		for id := range wantRemoved {
			if !fullIDs[id] && !removedSeen[id] {
				// Left the playlist and not listed as removed: a client
				// with the delta update would keep it.
				t.Errorf("%s left the playlist but is not in RECENTLY-REMOVED-DATERANGES:\n%s", id, delta)
				removedSeen[id] = true
			}
		}
		if skippedStart && len(removedSeen) >= len(wantRemoved) {
			t.Logf("delta updates: %d segments skipped, removed %q", skipped, removed)
			return
		}
	}
	t.Errorf("delta updates: saw a date range start in skipped segments: %v, removed ids %v of %v", skippedStart, removedSeen, wantRemoved)
}

// versionKey tells playlist versions apart: media sequence, last segment,
// preload hint.
func versionKey(pl []byte) string {
	seq := regexp.MustCompile(`#EXT-X-MEDIA-SEQUENCE:\d+`).Find(pl)
	segs := regexp.MustCompile(`(?m)^seg\d+\.m4s$`).FindAll(pl, -1)
	hint := regexp.MustCompile(`#EXT-X-PRELOAD-HINT:[^\n]*`).Find(pl)
	var last []byte
	if len(segs) > 0 {
		last = segs[len(segs)-1]
	}
	return string(seq) + " " + string(last) + " " + string(hint)
}

// checkLateJoin is a viewer that joins while cue id is active: it reads only
// the newest complete segment and the first part of the open segment, and
// must find the cue's emsg there, with the id and time of the first one.
func checkLateJoin(t *testing.T, base string, videoID uint32, id string) {
	t.Helper()
	_, body, _ := e2etest.Get(t, base+"stream.m3u8")
	segs := regexp.MustCompile(`(?m)^seg(\d+)\.m4s$`).FindAllSubmatch(body, -1)
	if len(segs) == 0 {
		t.Fatal("late join: no segment")
	}
	newest := string(segs[len(segs)-1][0])
	_, b, _ := e2etest.Get(t, base+newest)
	seg, err := decodeCueSegment(b, videoID)
	if err != nil {
		t.Fatalf("late join: %s: %v", newest, err)
	}
	found := false
	for _, e := range seg.emsgs {
		v, err := id3Cue(e)
		if err == nil && strings.Contains(v, `"id":"`+id+`"`) && !strings.Contains(v, `"end":true`) {
			found = true
			if e.PresentationTime >= seg.tfdt {
				t.Errorf("late join: %s's emsg at %d, inside %s from %d: not a re-send", id, e.PresentationTime, newest, seg.tfdt)
			}
		}
	}
	if !found {
		t.Errorf("late join: %s has no emsg of active cue %s", newest, id)
	}
}

// TestE2ECueRestart schedules a cue and starts another in one server, stops
// it, starts a new server on the same cue store and publishes again: the
// scheduled cue fires there and the active one is carried again, with the
// same emsg ids.
func TestE2ECueRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	store := t.TempDir() + "/cues.db"
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	srvA := startServer(t, func(c *server.Config) { c.GracePeriod, c.CueStore = time.Second, store })
	pubA, stopA := context.WithCancel(ctx)
	go func() { _ = testpub.Publish(pubA, srvA.RTMP+"/live/again", fixture, testpub.Options{Loops: 5}) }()
	api := "/api/v1/streams/again/cues"
	e2etest.WaitUntil(t, 15*time.Second, "the stream to appear", func() bool {
		code, _, _ := e2etest.Get(t, srvA.HTTP+"/live/again/stream.m3u8")
		return code == 200
	})
	active := mustCue(t, http.MethodPost, srvA.HTTP+api, cueDoc(t, "on-air", "now", 60000), http.StatusCreated)
	pdt, err := time.Parse(time.RFC3339Nano, active.ProgramDateTime)
	if err != nil {
		t.Fatal(err)
	}
	// Far enough ahead to come after the restart, near enough to fire soon.
	at := pdt.Add(5 * time.Second)
	mustCue(t, http.MethodPost, srvA.HTTP+api, cueDoc(t, "later", at.UTC().Format(time.RFC3339Nano), 0), http.StatusCreated)
	fA := newCueFollower(t, srvA.HTTP+"/live/again/")
	followA, stopFollowA := context.WithCancel(ctx)
	doneA := make(chan struct{})
	go func() { defer close(doneA); fA.run(followA) }()
	waitEmsg(t, fA, "on-air", 10*time.Second)
	stopFollowA()
	<-doneA
	onAir, _ := cueEmsgs(t, fA, "on-air")
	stopA()
	if err := srvA.Stop(); err != nil {
		t.Fatal(err)
	}

	srvB := startServer(t, func(c *server.Config) { c.GracePeriod, c.CueStore = time.Second, store })
	go func() { _ = testpub.Publish(ctx, srvB.RTMP+"/live/again", fixture, testpub.Options{Loops: 5}) }()
	e2etest.WaitUntil(t, 15*time.Second, "the stream to appear again", func() bool {
		code, _, _ := e2etest.Get(t, srvB.HTTP+"/live/again/stream.m3u8")
		return code == 200
	})
	fB := newCueFollower(t, srvB.HTTP+"/live/again/")
	followB, stopFollowB := context.WithCancel(ctx)
	doneB := make(chan struct{})
	go func() { defer close(doneB); fB.run(followB) }()
	defer func() { stopFollowB(); <-doneB }()
	waitEmsg(t, fB, "on-air", 10*time.Second)
	waitEmsg(t, fB, "later", 15*time.Second)
	stopFollowB()
	<-doneB

	again, _ := cueEmsgs(t, fB, "on-air")
	if again[0].e.ID != onAir[0].e.ID {
		t.Errorf("on-air: emsg id %d after the restart, %d before", again[0].e.ID, onAir[0].e.ID)
	}
	later, _ := cueEmsgs(t, fB, "later")
	// It fires at its scheduled date, mapped through the new stream's
	// program date-time.
	_, pl, _ := e2etest.Get(t, srvB.HTTP+"/live/again/stream.m3u8")
	p, _ := decodeM3U8(t, pl)
	if media, ok := mediaOf(fB, p, at.Truncate(time.Millisecond)); ok {
		if d := media - int64(later[0].e.PresentationTime); d < -90 || d > 90 {
			t.Errorf("later: fired at media %d, its date maps to %d", later[0].e.PresentationTime, media)
		}
	}
	// The API calls it active once its program date-time has passed.
	code, b, _ := callAPI(t, http.MethodGet, srvB.HTTP+api+"/later", "", nil)
	var r cueReply
	if err := json.Unmarshal(b, &r); code != http.StatusOK || err != nil {
		t.Fatalf("GET later: %d %s", code, b)
	}
	if d := int64(later[0].e.PresentationTime) - r.MediaTimeMs*90; d < 0 || d >= 90 {
		t.Errorf("later: emsg at %d, API media_time_ms %d", later[0].e.PresentationTime, r.MediaTimeMs)
	}
	start, _ := time.Parse(time.RFC3339Nano, r.ProgramDateTime)
	time.Sleep(time.Until(start.Add(time.Millisecond))) // a wall-clock time, not a condition anything signals
	if code, b, _ := callAPI(t, http.MethodGet, srvB.HTTP+api+"/later", "", nil); code != http.StatusOK || !strings.Contains(string(b), `"state":"active"`) {
		t.Errorf("GET later after its start: %d %s", code, b)
	}
}

// waitEmsg waits until the follower read a part with cue id's start emsg.
func waitEmsg(t *testing.T, f *cueFollower, id string, within time.Duration) {
	t.Helper()
	deadline := time.After(within)
	for {
		f.mu.Lock()
		ch := f.changed
		found := false
		for _, p := range f.parts {
			for _, e := range p.emsgs {
				if bytes.Contains(e.MessageData, []byte(`"id":"`+id+`"`)) {
					found = true
				}
			}
		}
		f.mu.Unlock()
		if found {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("no emsg of cue %s within %v (follower errors: %v)", id, within, f.errs)
		}
	}
}

// TestE2ECueAPIErrors checks every error status of the cue API on a running
// server: 401 with a token configured, 404 for an
// unknown stream or cue, 413 for a cue over max_cue_bytes, 429 with
// Retry-After over cue_rate.
func TestE2ECueAPIErrors(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	srv := startServer(t, func(c *server.Config) { c.CueToken, c.MaxCueBytes, c.CueRate = "s3cret-token", 700, 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	go func() { _ = testpub.Publish(ctx, srv.RTMP+"/live/errs", fixture, testpub.Options{Loops: 3}) }()
	e2etest.WaitUntil(t, 15*time.Second, "the stream to appear", func() bool {
		code, _, _ := e2etest.Get(t, srv.HTTP+"/live/errs/stream.m3u8")
		return code == 200
	})
	if strings.Contains(srv.Log.String(), "s3cret-token") {
		t.Error("the log shows the token")
	}
	api := srv.HTTP + "/api/v1/streams/errs/cues"
	small := cueDoc(t, "small", "now", 0)
	big := cueDoc(t, "big", "now", 0)
	big = bytes.Replace(big, []byte(`"title":"`), []byte(`"title":"`+strings.Repeat("x", 800)), 1)
	const tok = "s3cret-token"
	for _, c := range []struct {
		name, method, url, token string
		body                     []byte
		status                   int
	}{
		{"no token", http.MethodPost, api, "", small, 401},
		{"wrong token", http.MethodPost, api, "wrong", small, 401},
		{"no token, GET", http.MethodGet, api, "", nil, 401},
		{"unknown stream", http.MethodPost, srv.HTTP + "/api/v1/streams/nope/cues", tok, small, 404},
		{"unknown stream, GET", http.MethodGet, srv.HTTP + "/api/v1/streams/nope/cues", tok, nil, 404},
		{"unknown cue", http.MethodGet, api + "/nope", tok, nil, 404},
		{"unknown cue, DELETE", http.MethodDelete, api + "/nope", tok, nil, 404},
		{"oversize", http.MethodPost, api, tok, big, 413},
		// cue_rate 1: the oversize POST spent this second's token.
		{"rate", http.MethodPost, api, tok, small, 429},
	} {
		code, b, h := callAPI(t, c.method, c.url, c.token, c.body)
		if code != c.status {
			t.Errorf("%s: %s %s: %d %s, want %d", c.name, c.method, c.url, code, b, c.status)
			continue
		}
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			t.Errorf("%s: body %q is not a JSON error", c.name, b)
		}
		switch code {
		case 401:
			if !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("%s: WWW-Authenticate %q", c.name, h.Get("WWW-Authenticate"))
			}
		case 429:
			secs, err := strconv.Atoi(h.Get("Retry-After"))
			if err != nil || secs < 1 {
				t.Fatalf("%s: Retry-After %q", c.name, h.Get("Retry-After"))
			}
			// A client that waits as told gets through.
			time.Sleep(time.Duration(secs) * time.Second)
			if code, b, _ := callAPI(t, http.MethodPost, api, tok, small); code != 201 {
				t.Errorf("after Retry-After: %d %s", code, b)
			}
		}
	}
}

// TestE2ECues posts a product cue while a publisher streams and checks that
// it reaches the stream in both forms players read: an emsg box (read by
// mp4ff) in the part that holds its media time, with that exact
// presentation time, and an EXT-X-DATERANGE in the media playlist.
func TestE2ECues(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	srv := startServer(t, func(c *server.Config) { c.GracePeriod = time.Second })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	go func() { _ = testpub.Publish(ctx, srv.RTMP+"/live/shop", fixture, testpub.Options{Loops: 3}) }()
	base := srv.HTTP + "/live/shop/"
	e2etest.WaitUntil(t, 15*time.Second, "the stream to appear", func() bool {
		code, _, _ := e2etest.Get(t, base+"index.m3u8")
		return code == 200
	})

	cue, err := os.ReadFile("../../testdata/cues_example.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(cue, &doc); err != nil {
		t.Fatal(err)
	}
	doc["at"] = "now"
	body, _ := json.Marshal(doc)
	api := srv.HTTP + "/api/v1/streams/shop/cues"
	resp, err := http.Post(api, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	created, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST cue: %d %s", resp.StatusCode, created)
	}
	var got struct {
		MediaTimeMs     int64  `json:"media_time_ms"`
		ProgramDateTime string `json:"program_date_time"`
	}
	if err := json.Unmarshal(created, &got); err != nil {
		t.Fatal(err)
	}

	// Refusals: bad JSON names the field, unknown stream is a 404, an id
	// used by another cue is refused (the same cue again is a retry, 201).
	for _, c := range []struct {
		url, body string
		status    int
	}{
		{api, `{"v":1,"id":"x1","type":"product","product":{"sku":"a","title":"t","price":{"amount":"oops","currency":"EUR"},"image_url":"https://a/b.jpg","url":"https://a/b"}}`, 400},
		{srv.HTTP + "/api/v1/streams/nope/cues", string(body), 404},
		{api, strings.Replace(string(body), "Sneaker", "Boot", 1), 409},
		{api, string(body), 201},
	} {
		r, err := http.Post(c.url, "application/json", strings.NewReader(c.body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if r.StatusCode != c.status {
			t.Errorf("POST %s: %d %s, want %d", c.url, r.StatusCode, b, c.status)
		}
	}

	// The playlist carries the DATERANGE; find the part with the emsg.
	var pl []byte
	e2etest.WaitUntil(t, 10*time.Second, "the DATERANGE in the playlist", func() bool {
		_, pl, _ = e2etest.Get(t, base+"stream.m3u8")
		return strings.Contains(string(pl), `#EXT-X-DATERANGE:ID="sneaker-42"`)
	})
	if !strings.Contains(string(pl), "CAN-SKIP-DATERANGES=YES") {
		t.Error("CAN-SKIP-DATERANGES missing")
	}
	start := regexp.MustCompile(`ID="sneaker-42"[^\n]*START-DATE="([^"]+)"`).FindSubmatch(pl)
	if start == nil || string(start[1]) != got.ProgramDateTime {
		t.Errorf("DATERANGE START-DATE %q, API said %q", start, got.ProgramDateTime)
	}

	want := uint64(got.MediaTimeMs) * 90
	found := false
	e2etest.WaitUntil(t, 10*time.Second, "the cue's emsg in a part", func() bool {
		_, pl, _ = e2etest.Get(t, base+"stream.m3u8")
		for _, uri := range regexp.MustCompile(`URI="(part\d+\.m4s)"`).FindAllSubmatch(pl, -1) {
			_, b, _ := e2etest.Get(t, base+string(uri[1]))
			f, err := mp4.DecodeFile(bytes.NewReader(b))
			if err != nil || len(f.Segments) == 0 {
				continue
			}
			for _, frag := range f.Segments[0].Fragments {
				for _, e := range frag.Emsgs {
					if e.SchemeIDURI != "https://aomedia.org/emsg/ID3" || e.Version != 1 {
						continue
					}
					if !strings.Contains(string(e.MessageData), "sneaker-42") {
						continue
					}
					found = true
					// Frame-exact: the emsg carries the media time the API
					// returned, within the millisecond rounding of the JSON.
					if d := int64(e.PresentationTime) - int64(want); d < -90 || d > 90 {
						t.Errorf("emsg presentation_time %d, API media time %d (90 kHz)", e.PresentationTime, want)
					}
					if e.TimeScale != 90000 {
						t.Errorf("emsg timescale %d", e.TimeScale)
					}
					// The part's decode time range holds the cue.
					base := frag.Moof.Traf.Tfdt.BaseMediaDecodeTime()
					if e.PresentationTime+90 < base {
						t.Errorf("emsg at %d in a part starting at %d", e.PresentationTime, base)
					}
					return true
				}
			}
		}
		return false
	})
	if !found {
		t.Fatal("no emsg")
	}

	// DELETE ends the cue: the DATERANGE gets its end.
	req, _ := http.NewRequest(http.MethodDelete, api+"/sneaker-42", nil)
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusOK {
		t.Fatalf("DELETE: %d", r.StatusCode)
	}
}

// cueFollower follows a stream as an LL-HLS player does (blocking playlist
// reloads for the next part) and keeps every playlist, part and segment it
// read, decoded by parsers that are not shopcast's: mp4ff for the boxes,
// hls-m3u8 for the playlists (gohlslib's parser only finds the next part).
type cueFollower struct {
	t    *testing.T
	base string

	mu        sync.Mutex
	changed   chan struct{}
	videoID   uint32
	timescale uint32
	trex      *mp4.TrexBox
	parts     map[int]*cuePart // by part number
	segs      map[int]*cueSeg  // by media sequence number
	playlists [][]byte         // full playlists, in the order read
	end       uint64           // end of the newest video sample read (timescale)
	lastPart  int
	errs      []string
}

// cuePart is one part as mp4ff reads it.
type cuePart struct {
	n, msn, idx int
	body        []byte
	tfdt, dur   uint64   // video decode-time range [tfdt, tfdt+dur)
	pts         []uint64 // video sample presentation times
	emsgs       []*mp4.EmsgBox
}

// cueSeg is one complete segment as mp4ff reads it.
type cueSeg struct {
	msn   int
	body  []byte
	tfdt  uint64
	emsgs []*mp4.EmsgBox
}

func newCueFollower(t *testing.T, base string) *cueFollower {
	return &cueFollower{t: t, base: base, changed: make(chan struct{}), parts: map[int]*cuePart{}, segs: map[int]*cueSeg{}, lastPart: -1}
}

func (f *cueFollower) errorf(format string, args ...any) {
	f.mu.Lock()
	f.errs = append(f.errs, fmt.Sprintf(format, args...))
	f.mu.Unlock()
}

// fetch GETs url; the body is nil unless the status is 200.
func fetchBody(ctx context.Context, url string) ([]byte, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %d", url, resp.StatusCode)
	}
	return b, nil
}

var partNum = regexp.MustCompile(`^part(\d+)\.m4s$`)

// run follows the playlist until ctx ends or the stream ends.
func (f *cueFollower) run(ctx context.Context) {
	url := f.base + "stream.m3u8"
	for ctx.Err() == nil {
		body, err := fetchBody(ctx, url)
		if err != nil {
			if ctx.Err() == nil {
				f.errorf("%v", err)
			}
			return
		}
		pl, err := playlist.Unmarshal(body)
		if err != nil {
			f.errorf("gohlslib cannot parse the playlist: %v", err)
			return
		}
		m, ok := pl.(*playlist.Media)
		if !ok {
			f.errorf("not a media playlist")
			return
		}
		if f.trex == nil {
			if err := f.readInit(ctx, body); err != nil {
				f.errorf("init: %v", err)
				return
			}
		}
		for i, seg := range m.Segments {
			msn := m.MediaSequence + i
			for j, p := range seg.Parts {
				f.readPart(ctx, p.URI, msn, j)
			}
			f.readSegment(ctx, seg.URI, msn)
		}
		for j, p := range m.Parts {
			f.readPart(ctx, p.URI, m.MediaSequence+len(m.Segments), j)
		}
		f.mu.Lock()
		f.playlists = append(f.playlists, body)
		close(f.changed)
		f.changed = make(chan struct{})
		f.mu.Unlock()
		if m.Endlist {
			return
		}
		url = fmt.Sprintf("%sstream.m3u8?_HLS_msn=%d&_HLS_part=%d", f.base, m.MediaSequence+len(m.Segments), len(m.Parts))
	}
}

var mapURI = regexp.MustCompile(`#EXT-X-MAP:URI="([^"]+)"`)

func (f *cueFollower) readInit(ctx context.Context, pl []byte) error {
	m := mapURI.FindSubmatch(pl)
	if m == nil {
		return fmt.Errorf("no EXT-X-MAP")
	}
	body, err := fetchBody(ctx, f.base+string(m[1]))
	if err != nil {
		return err
	}
	file, err := mp4.DecodeFile(bytes.NewReader(body))
	if err != nil || file.Init == nil {
		return fmt.Errorf("mp4ff: %v", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, trak := range file.Init.Moov.Traks {
		if trak.Mdia.Hdlr.HandlerType == "vide" {
			f.videoID = trak.Tkhd.TrackID
			f.timescale = trak.Mdia.Mdhd.Timescale
			f.trex, _ = file.Init.Moov.Mvex.GetTrex(f.videoID)
		}
	}
	if f.trex == nil {
		return fmt.Errorf("no video track")
	}
	return nil
}

// fetchNew returns the body of uri, or nil when seen (called under f.mu)
// says it was read already or the GET failed; a failure is reported unless
// ctx ended.
func (f *cueFollower) fetchNew(ctx context.Context, uri string, seen func() bool) []byte {
	f.mu.Lock()
	done := seen()
	f.mu.Unlock()
	if done {
		return nil
	}
	body, err := fetchBody(ctx, f.base+uri)
	if err != nil {
		if ctx.Err() == nil {
			f.errorf("%v", err)
		}
		return nil
	}
	return body
}

func (f *cueFollower) readPart(ctx context.Context, uri string, msn, idx int) {
	m := partNum.FindStringSubmatch(uri)
	if m == nil {
		f.errorf("part URI %q", uri)
		return
	}
	n, _ := strconv.Atoi(m[1])
	body := f.fetchNew(ctx, uri, func() bool { _, ok := f.parts[n]; return ok })
	if body == nil {
		return
	}
	file, err := mp4.DecodeFile(bytes.NewReader(body))
	if err != nil || len(file.Segments) != 1 || len(file.Segments[0].Fragments) != 1 {
		f.errorf("mp4ff cannot read %s as one fragment: %v", uri, err)
		return
	}
	frag := file.Segments[0].Fragments[0]
	p := &cuePart{n: n, msn: msn, idx: idx, body: body, emsgs: frag.Emsgs}
	for _, traf := range frag.Moof.Trafs {
		if traf.Tfhd.TrackID != f.videoID {
			continue
		}
		p.tfdt = traf.Tfdt.BaseMediaDecodeTime()
		t := p.tfdt
		for _, trun := range traf.Truns {
			trun.AddSampleDefaultValues(traf.Tfhd, f.trex)
			for _, s := range trun.Samples {
				p.pts = append(p.pts, uint64(int64(t)+int64(s.CompositionTimeOffset)))
				t += uint64(s.Dur)
			}
		}
		p.dur = t - p.tfdt
	}
	f.mu.Lock()
	f.parts[n] = p
	f.lastPart = max(f.lastPart, n)
	f.end = max(f.end, p.tfdt+p.dur)
	f.mu.Unlock()
}

func (f *cueFollower) readSegment(ctx context.Context, uri string, msn int) {
	body := f.fetchNew(ctx, uri, func() bool { _, ok := f.segs[msn]; return ok })
	if body == nil {
		return
	}
	s, err := decodeCueSegment(body, f.videoID)
	if err != nil {
		f.errorf("%s: %v", uri, err)
		return
	}
	s.msn = msn
	f.mu.Lock()
	f.segs[msn] = s
	f.mu.Unlock()
}

// decodeCueSegment reads a segment with mp4ff: its emsgs, in order, and the
// video tfdt of its first fragment.
func decodeCueSegment(body []byte, videoID uint32) (*cueSeg, error) {
	file, err := mp4.DecodeFile(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("mp4ff: %w", err)
	}
	s := &cueSeg{body: body}
	first := true
	for _, ms := range file.Segments {
		for _, frag := range ms.Fragments {
			s.emsgs = append(s.emsgs, frag.Emsgs...)
			for _, traf := range frag.Moof.Trafs {
				if first && traf.Tfhd.TrackID == videoID {
					s.tfdt = traf.Tfdt.BaseMediaDecodeTime()
					first = false
				}
			}
		}
	}
	if first {
		return nil, fmt.Errorf("no video fragment")
	}
	return s, nil
}

// waitEnd waits until the follower has read media up to media time d.
func (f *cueFollower) waitEnd(t *testing.T, d time.Duration, within time.Duration) {
	t.Helper()
	deadline := time.After(within)
	for {
		f.mu.Lock()
		ok := f.timescale > 0 && time.Duration(f.end)*time.Second/time.Duration(f.timescale) >= d
		ch := f.changed
		errs := f.errs
		f.mu.Unlock()
		if ok {
			return
		}
		if len(errs) > 0 {
			t.Fatalf("follower: %v", errs)
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("timed out waiting for media time %v", d)
		}
	}
}

// newestPart is the number of the newest part the server lists now.
func newestPart(t *testing.T, base string) int {
	t.Helper()
	_, pl, _ := e2etest.Get(t, base+"stream.m3u8")
	all := regexp.MustCompile(`#EXT-X-PART:[^\n]*URI="part(\d+)\.m4s"`).FindAllSubmatch(pl, -1)
	if len(all) == 0 {
		t.Fatalf("no part listed:\n%s", pl)
	}
	n, _ := strconv.Atoi(string(all[len(all)-1][1]))
	return n
}

// id3Cue decodes an emsg's ID3 tag with github.com/bogem/id3v2 and returns
// the value of its TXXX frame described "shopcast".
func id3Cue(e *mp4.EmsgBox) (string, error) {
	tag, err := id3v2.ParseReader(bytes.NewReader(e.MessageData), id3v2.Options{Parse: true})
	if err != nil {
		return "", err
	}
	if tag.Version() != 4 {
		return "", fmt.Errorf("ID3v2.%d, want 2.4", tag.Version())
	}
	for _, fr := range tag.GetFrames("TXXX") {
		if udtf, ok := fr.(id3v2.UserDefinedTextFrame); ok && udtf.Description == "shopcast" {
			return udtf.Value, nil
		}
	}
	return "", fmt.Errorf("no TXXX frame described shopcast")
}

// decodeM3U8 parses a media playlist with hls-m3u8, and the
// RECENTLY-REMOVED-DATERANGES of its EXT-X-SKIP, which hls-m3u8 v0.6.5
// does not model. Not in strict mode: v0.6.5 then refuses an EXT-X-PART
// right after the first EXT-X-PROGRAM-DATE-TIME ("playlist is empty"),
// which RFC 8216bis allows and every LL-HLS playlist has.
func decodeM3U8(t *testing.T, body []byte) (*m3u8.MediaPlaylist, []string) {
	t.Helper()
	p, lt, err := m3u8.DecodeFrom(bytes.NewReader(body), false)
	if err != nil || lt != m3u8.MEDIA {
		t.Fatalf("hls-m3u8 cannot parse the playlist: %v\n%s", err, body)
	}
	mp := p.(*m3u8.MediaPlaylist)
	if mp.Count() > 0 && mp.Segments[0].ProgramDateTime.IsZero() {
		t.Fatalf("hls-m3u8 read no EXT-X-PROGRAM-DATE-TIME:\n%s", body)
	}
	var removed []string
	if m := regexp.MustCompile(`(?m)^#EXT-X-SKIP:.*RECENTLY-REMOVED-DATERANGES="([^"]*)"`).FindSubmatch(body); m != nil && len(m[1]) > 0 {
		for _, id := range bytes.Split(m[1], []byte("\t")) {
			removed = append(removed, string(id))
		}
	}
	return mp, removed
}
