package packager

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/playlist"

	"github.com/shopcast/shopcast/ingest"
)

// TestAnchorMSN checks the wall-clock slot a publication starts in: the
// floor of its first keyframe's arrival, so that the boundary where two
// nodes may disagree is the slot's start, and a program date-time is never
// after the arrival.
func TestAnchorMSN(t *testing.T) {
	t.Parallel()
	m := newTestManager(t, Config{AlignedTimeline: true, TargetDuration: 2 * time.Second})
	s := newStream(m, "test")
	for _, c := range []struct {
		at   time.Duration // after numberEpoch
		want int64
	}{
		{0, 0},
		{time.Millisecond, 0},
		{2*time.Second - time.Millisecond, 0},
		{2 * time.Second, 1},
		{3 * time.Second, 1}, // (k+1/2)G: where rounding would flip, flooring does not
		{3*time.Second + time.Millisecond, 1},
		{2000*time.Second - time.Millisecond, 999},
		{2000 * time.Second, 1000},
		{-time.Second, 0}, // a clock before the epoch starts at 0
	} {
		if got := s.anchorMSN(numberEpoch.Add(c.at)); got != c.want {
			t.Errorf("arrival at epoch+%v: MSN %d, want %d", c.at, got, c.want)
		}
	}
}

// node is one packager of a redundant pair, fed by teePub.
type node struct {
	m   *Manager
	pub ingest.Publication
	// drop, when set, withholds the units it returns true for (a lossy
	// link); shift is subtracted from the timestamps (an encoder that
	// reconnected and counts from 0 again).
	drop  func(u *ingest.Unit) bool
	shift time.Duration
}

// teePub hands every unit to both nodes, as an encoder pushing one feed to
// two origins does, setting the simulated wall clock to the unit's time
// first.
type teePub struct {
	nodes []*node
	wall  *time.Time
	base  time.Time
}

func (tp *teePub) WriteUnit(u *ingest.Unit) error {
	*tp.wall = tp.base.Add(u.DTS)
	for _, n := range tp.nodes {
		if n.pub == nil || n.drop != nil && n.drop(u) {
			continue
		}
		c := *u
		c.PTS, c.DTS = u.PTS-n.shift, u.DTS-n.shift
		if err := n.pub.WriteUnit(&c); err != nil {
			return err
		}
	}
	return nil
}

func (tp *teePub) WriteData(*ingest.Data) {}
func (tp *teePub) Close()                 {}

// partKey is a (MSN, part index) of the aligned timeline.
type partKey struct {
	msn   int64
	index int
}

// partView is what a node's playlist says of one part, and its video.
type partView struct {
	uri     string
	gap     bool
	tfdt    uint64
	samples int
}

// snapshot reads a node's playlist: its MSNs (checked contiguous), the
// program date-time of each segment, its gaps and its parts' video.
type snapshot struct {
	pdt   map[int64]time.Time
	gap   map[int64]bool
	parts map[partKey]partView
	first int64
	body  string
}

// A node that lost frames has parts shorter than Apple's authoring spec
// asks (85% of PART-TARGET): lossy skips that check.
func takeSnapshot(t *testing.T, m *Manager, lossy bool) snapshot {
	t.Helper()
	body := mustFetch(t, m, mediaReq(-1, -1, SkipNone)).Body
	pl, err := playlist.Unmarshal(body)
	if err != nil {
		t.Fatalf("gohlslib cannot parse the playlist: %v\n%s", err, body)
	}
	mp, ok := pl.(*playlist.Media)
	if !ok {
		t.Fatalf("not a media playlist: %T", pl)
	}
	if !lossy {
		checkMedia(t, mp, body, m.Config())
	}
	sn := snapshot{pdt: map[int64]time.Time{}, gap: map[int64]bool{}, parts: map[partKey]partView{},
		first: int64(mp.MediaSequence), body: string(body)}
	var segs []*playlist.MediaSegment
	segs = append(segs, mp.Segments...)
	for i, seg := range segs {
		msn := sn.first + int64(i)
		if seg.URI != fmt.Sprintf("seg%d.m4s", msn) {
			t.Fatalf("segment %d of the playlist is %s, want seg%d.m4s: MSNs not contiguous\n%s", i, seg.URI, msn, body)
		}
		if seg.DateTime != nil {
			sn.pdt[msn] = *seg.DateTime
		}
		sn.gap[msn] = seg.Gap
		if !seg.Gap {
			// The whole segment, keyed as part -1: its first tfdt and all
			// its video samples.
			pv := partView{uri: seg.URI}
			for i, fr := range decodeFragments(t, mustFetch(t, m, fileReq(seg.URI)).Body) {
				if i == 0 {
					pv.tfdt = fr.tracks[1].tfdt
				}
				pv.samples += len(fr.tracks[1].samples)
			}
			sn.parts[partKey{msn, -1}] = pv
		}
		for j, p := range seg.Parts {
			pv := partView{uri: p.URI, gap: p.Gap}
			if !p.Gap {
				fr := decodeFragments(t, mustFetch(t, m, fileReq(p.URI)).Body)
				run := fr[0].tracks[1]
				pv.tfdt, pv.samples = run.tfdt, len(run.samples)
			}
			sn.parts[partKey{msn, j}] = pv
		}
	}
	return sn
}

// TestAlignedTimeline feeds two packagers the same synthetic encoder (a
// keyframe every TargetDuration) and checks that wherever both have a
// part, it has the same number, media time and program date-time, and that
// what one node lacks is listed as a gap and counted.
func TestAlignedTimeline(t *testing.T) {
	t.Parallel()
	const g = 2 * time.Second
	// The encoder's first frame arrives 0.3 s into slot 1000.
	base := numberEpoch.Add(14_600_000*g + 300*time.Millisecond)
	cases := []struct {
		name string
		// run feeds the pair 60-frame GOPs at 30 fps; b starts with no
		// publisher when lateB.
		lateB bool
		// lossy: node b lacks media that node a has.
		lossy bool
		run   func(t *testing.T, sy *synth, a, b *node, info ingest.PublishInfo)
		// check looks at node b's playlist and counters.
		check func(t *testing.T, sa, sb snapshot, st AlignedStats)
	}{{
		name: "same start",
		run:  func(t *testing.T, sy *synth, a, b *node, _ ingest.PublishInfo) { sy.frames(600) },
		check: func(t *testing.T, sa, sb snapshot, st AlignedStats) {
			if st != (AlignedStats{}) {
				t.Errorf("counters %+v, want none", st)
			}
		},
	}, {
		name:  "late join",
		lateB: true,
		run: func(t *testing.T, sy *synth, a, b *node, info ingest.PublishInfo) {
			sy.frames(95) // b comes up mid-GOP: it starts on the keyframe of frame 120
			var err error
			if b.pub, err = b.m.Publish(info); err != nil {
				t.Fatal(err)
			}
			sy.frames(505)
		},
		check: func(t *testing.T, sa, sb snapshot, st AlignedStats) {
			if st.GapSegments != 0 || st.OffGOP != 0 {
				t.Errorf("counters %+v: a late start is no gap", st)
			}
		},
	}, {
		name:  "restart mid-show",
		lossy: true,
		run: func(t *testing.T, sy *synth, a, b *node, info ingest.PublishInfo) {
			sy.frames(200)
			b.pub.Close()
			b.pub = nil
			sy.frames(130) // gone for over 4 s
			// The encoder reconnects counting from 0; its keyframes are
			// still every 60 frames of the shared clock.
			b.shift = sy.frameTime(sy.frame)
			var err error
			if b.pub, err = b.m.Publish(info); err != nil {
				t.Fatal(err)
			}
			sy.frames(270)
		},
		check: func(t *testing.T, sa, sb snapshot, st AlignedStats) {
			if st.GapSegments < 2 {
				t.Errorf("counters %+v: want the segments missed listed as gaps", st)
			}
			// The same encoder settings: no discontinuity, as on node a.
			if !strings.Contains(sb.body, "#EXT-X-GAP\n") || strings.Contains(sb.body, "#EXT-X-DISCONTINUITY\n") {
				t.Errorf("want EXT-X-GAP and no EXT-X-DISCONTINUITY after the publisher's return:\n%s", sb.body)
			}
		},
	}, {
		name:  "dropped frames",
		lossy: true,
		run: func(t *testing.T, sy *synth, a, b *node, _ ingest.PublishInfo) {
			lost := func(from, to int) func(u *ingest.Unit) bool {
				return func(u *ingest.Unit) bool {
					return u.DTS >= sy.round(sy.frameTime(from)) && u.DTS < sy.round(sy.frameTime(to))
				}
			}
			sy.frames(410)
			b.drop = lost(415, 425) // the keyframe of frame 420 with them
			sy.frames(80)
			b.drop = lost(490, 525) // within a GOP: parts go missing
			sy.frames(110)
			b.drop = nil
		},
		check: func(t *testing.T, sa, sb snapshot, st AlignedStats) {
			if st.GapParts == 0 || st.GapSegments == 0 || st.OffGOP == 0 || st.Dropped == 0 {
				t.Errorf("counters %+v: want gap parts, a gap segment, off-GOP segments and dropped frames", st)
			}
			if !strings.Contains(sb.body, "GAP=YES") || !strings.Contains(sb.body, "#EXT-X-GAP\n") {
				t.Errorf("no GAP=YES part or EXT-X-GAP segment:\n%s", sb.body)
			}
		},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var wall time.Time
			cfg := Config{AlignedTimeline: true, TargetDuration: g, PartTarget: 500 * time.Millisecond,
				TimelineAnchor: func(string, time.Time) int64 { return int64(wall.Sub(numberEpoch) / g) }}
			sy, info := newSynth(t)
			sy.msRounding = true
			a := &node{m: newTestManager(t, cfg)}
			b := &node{m: newTestManager(t, cfg)}
			var err error
			if a.pub, err = a.m.Publish(info); err != nil {
				t.Fatal(err)
			}
			if !c.lateB {
				if b.pub, err = b.m.Publish(info); err != nil {
					t.Fatal(err)
				}
			}
			sy.pub = &teePub{nodes: []*node{a, b}, wall: &wall, base: base}
			c.run(t, sy, a, b, info)

			sa, sb := takeSnapshot(t, a.m, false), takeSnapshot(t, b.m, c.lossy)
			if sa.first < 14_600_000 || sa.first > 14_600_000+20 {
				t.Errorf("node a's playlist starts at MSN %d; the publisher started in slot 1000", sa.first)
			}
			common := 0
			for k, pb := range sb.parts {
				pa, ok := sa.parts[k]
				if !ok || pb.gap || pa.gap {
					continue
				}
				common++
				// A part that lost its first frames on b starts later.
				if pa.uri != pb.uri || pa.tfdt != pb.tfdt && (!c.lossy || pb.tfdt < pa.tfdt) {
					t.Errorf("MSN %d part %d: a has %s at tfdt %d, b %s at %d", k.msn, k.index, pa.uri, pa.tfdt, pb.uri, pb.tfdt)
				}
				// Where b lacked frames its part or segment has fewer.
				if pa.samples != pb.samples && !(c.lossy && pb.samples < pa.samples) {
					t.Errorf("MSN %d part %d: a has %d video samples, b %d", k.msn, k.index, pa.samples, pb.samples)
				}
			}
			if common < 8 {
				t.Errorf("only %d parts on both nodes\na:\n%s\nb:\n%s", common, sa.body, sb.body)
			}
			for msn, pb := range sb.pdt {
				want := numberEpoch.Add(time.Duration(msn) * g)
				if !pb.Equal(want) {
					t.Errorf("MSN %d on b: PROGRAM-DATE-TIME %v, want %v", msn, pb, want)
				}
				if pa, ok := sa.pdt[msn]; ok && !pa.Equal(pb) {
					t.Errorf("MSN %d: PROGRAM-DATE-TIME %v on a, %v on b", msn, pa, pb)
				}
			}
			// Every grid slot's media time is its MSN's.
			grid := uint64(g / time.Duration(4) * 90000 / time.Second)
			for n, sn := range []snapshot{sa, sb} {
				for k, p := range sn.parts {
					if k.index < 0 {
						k.index = 0
					}
					want := (uint64(k.msn)*4 + uint64(k.index)) * grid
					if !p.gap && (p.tfdt < want || p.tfdt >= want+grid) {
						t.Errorf("MSN %d part %d on node %d starts at tfdt %d, out of its slot [%d, %d)", k.msn, k.index, n, p.tfdt, want, want+grid)
					}
				}
			}
			// The TS rendition lists the same MSNs, and the same gaps.
			for i, n := range []*node{a, b} {
				sn := []snapshot{sa, sb}[i]
				body := mustFetch(t, n.m, fileReq("stream_ts.m3u8")).Body
				pl, err := playlist.Unmarshal(body)
				if err != nil {
					t.Fatalf("gohlslib refuses node %d's TS playlist: %v\n%s", i, err, body)
				}
				tm := pl.(*playlist.Media)
				for j, seg := range tm.Segments {
					msn := int64(tm.MediaSequence + j)
					if seg.URI != fmt.Sprintf("seg%d.ts", msn) || seg.Gap != sn.gap[msn] {
						t.Errorf("node %d's TS playlist: %s (gap %v) at MSN %d, where the fMP4 one has gap %v", i, seg.URI, seg.Gap, msn, sn.gap[msn])
					}
				}
			}
			var st AlignedStats
			for _, ss := range b.m.Stats().Streams {
				st = ss.Aligned
			}
			c.check(t, sa, sb, st)
		})
	}
}

// TestAlignedNow: on the aligned timeline a cue posted "now" starts on a
// part slot's start, and its program date-time is the epoch plus its media
// time, so that two nodes given the same POST within one part agree.
func TestAlignedNow(t *testing.T) {
	t.Parallel()
	const grid = 500 * time.Millisecond
	m := newTestManager(t, Config{AlignedTimeline: true, TargetDuration: 2 * time.Second, PartTarget: grid,
		TimelineAnchor: func(string, time.Time) int64 { return 1000 }})
	sy := publish(t, m)
	sy.frames(100)
	type result struct {
		at  EventTime
		err error
	}
	done := make(chan result, 1)
	go func() {
		at, err := m.AddEvent("test", Event{ID: "now1", Now: true, ID3: []byte("ID3 now"), EmsgID: 1})
		done <- result{at, err}
	}()
	// Frames go on until the event is placed (the publisher's clock runs
	// ahead of the wall clock here: no pacing is needed).
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
		select {
		case r := <-done:
			if r.err != nil {
				t.Fatal(r.err)
			}
			if r.at.Media%grid != 0 || r.at.Media < 2000*time.Second {
				t.Errorf("\"now\" placed at media time %v, not on a %v slot of the timeline", r.at.Media, grid)
			}
			if !r.at.Wall.Equal(numberEpoch.Add(r.at.Media)) {
				t.Errorf("\"now\" at media time %v, program date-time %v", r.at.Media, r.at.Wall)
			}
			return
		default:
			sy.next()
		}
	}
	t.Fatal("the \"now\" event was not placed")
}
