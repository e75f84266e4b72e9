package telemetry

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shopcast/shopcast/cues"
	"github.com/shopcast/shopcast/packager"
)

// The per-stream counters of a packager.StreamStats, flattened so that
// they fold the same way: counters, then the lag histogram.
const (
	vVideoBytes = iota
	vVideoFrames
	vAudioBytes
	vAudioFrames
	vParts
	vSegments
	vPublishes
	vDisconnects
	vGapSegments
	vGapParts
	vOffGOP
	vAlignDropped
	vLagCount
	vLagSumNs
	vLagBuckets // len(packager.LagBuckets) values from here
	vLen        = vLagBuckets + len(packager.LagBuckets)
)

type counters [vLen]uint64

func flatten(st *packager.StreamStats) counters {
	var c counters
	c[vVideoBytes], c[vVideoFrames] = uint64(st.Video.Bytes), uint64(st.Video.Frames)
	c[vAudioBytes], c[vAudioFrames] = uint64(st.Audio.Bytes), uint64(st.Audio.Frames)
	c[vParts], c[vSegments] = uint64(st.Parts), uint64(st.Segments)
	c[vPublishes], c[vDisconnects] = uint64(st.Publishes), uint64(st.Disconnects)
	c[vGapSegments], c[vGapParts] = uint64(st.Aligned.GapSegments), uint64(st.Aligned.GapParts)
	c[vOffGOP], c[vAlignDropped] = uint64(st.Aligned.OffGOP), uint64(st.Aligned.Dropped)
	c[vLagCount], c[vLagSumNs] = st.Lag.Count, uint64(st.Lag.Sum)
	copy(c[vLagBuckets:], st.Lag.Buckets[:])
	return c
}

// streamCollector exports the per-stream metrics. At each scrape it reads
// the packager's snapshot and folds every stream's counters into its
// label's totals by their growth since the last scrape, so that a label's
// counters never go down: not when a stream folded into OtherStream goes
// away, nor when a stream restarts from zero.
type streamCollector struct {
	m *Metrics

	mu     sync.Mutex
	labels streamLabels
	last   map[string]counters  // by stream name: the last snapshot folded
	totals map[string]*counters // by label
	posted map[string]uint64    // cues posted, by label

	bytes, frames, connects, disconnects, parts, segments  *prometheus.Desc
	lag, blocked, viewers, dropped, cuesPosted, cuesActive *prometheus.Desc
	streams                                                *prometheus.Desc
	aligned                                                *prometheus.Desc

	// The variants' counters, folded as the streams' are: by stream name
	// and variant (vlast), by label pair (vtotals).
	vlast                                                       map[variantKey]variantCounters
	vtotals                                                     map[variantKey]*variantCounters
	vbytes, vframes, vparts, vsegments, vconnects, vdisconnects *prometheus.Desc
}

// variantKey is a stream (name or label) and a variant.
type variantKey struct{ stream, variant string }

// The counters of a packager.VariantStats.
const (
	wVideoBytes = iota
	wVideoFrames
	wParts
	wSegments
	wPublishes
	wDisconnects
	wLen
)

type variantCounters [wLen]uint64

func flattenVariant(v *packager.VariantStats) variantCounters {
	return variantCounters{uint64(v.Video.Bytes), uint64(v.Video.Frames), uint64(v.Parts), uint64(v.Segments),
		uint64(v.Publishes), uint64(v.Disconnects)}
}

func newStreamCollector(m *Metrics) *streamCollector {
	stream := []string{"stream"}
	variant := []string{"stream", "variant"}
	return &streamCollector{
		m:      m,
		labels: streamLabels{max: m.MaxStreamLabels, own: map[string]bool{}},
		last:   map[string]counters{},
		totals: map[string]*counters{},
		posted: map[string]uint64{},

		bytes:       prometheus.NewDesc("shopcast_ingest_bytes_total", "Media payload bytes received from publishers, by track kind (video, audio).", []string{"stream", "track"}, nil),
		frames:      prometheus.NewDesc("shopcast_ingest_frames_total", "Frames received from publishers, by track kind (video, audio).", []string{"stream", "track"}, nil),
		connects:    prometheus.NewDesc("shopcast_publisher_connects_total", "Publications started.", stream, nil),
		disconnects: prometheus.NewDesc("shopcast_publisher_disconnects_total", "Publications ended: publisher gone or replaced, or server shutdown.", stream, nil),
		parts:       prometheus.NewDesc("shopcast_parts_total", "LL-HLS parts published.", stream, nil),
		segments:    prometheus.NewDesc("shopcast_segments_total", "Media segments completed.", stream, nil),
		lag:         prometheus.NewDesc("shopcast_publish_to_deliverable_seconds", "Time from the packager receiving the frame that completes a part to the part being published.", stream, nil),
		blocked:     prometheus.NewDesc("shopcast_blocked_requests", "Blocking playlist and preload-hint part requests waiting now.", stream, nil),
		viewers:     prometheus.NewDesc("shopcast_viewers", "Active viewers: distinct sessions (client IP and User-Agent) that loaded a playlist within the viewer window.", stream, nil),
		dropped:     prometheus.NewDesc("shopcast_viewer_sessions_dropped_total", "New viewer sessions not tracked because the session table was full.", nil, nil),
		cuesPosted:  prometheus.NewDesc("shopcast_cues_posted_total", "Cues posted and placed in the stream.", stream, nil),
		cuesActive:  prometheus.NewDesc("shopcast_cues_active", "Cues showing now.", stream, nil),
		streams:     prometheus.NewDesc("shopcast_streams", "Streams in the packager: live, in their reconnect grace period, or ended and lingering.", nil, nil),
		aligned: prometheus.NewDesc("shopcast_aligned_missing_total", "On an aligned timeline (aligned_timeline), what this node lacked, by kind: gap_segment (EXT-X-GAP), gap_part (GAP=YES), off_gop (a segment whose duration is off the target duration), dropped_frame (frames after a missing keyframe).",
			[]string{"stream", "kind"}, nil),

		vlast:        map[variantKey]variantCounters{},
		vtotals:      map[variantKey]*variantCounters{},
		vbytes:       prometheus.NewDesc("shopcast_variant_ingest_bytes_total", "Video payload bytes received for a variant (a rendition besides the source's; its audio is the source's).", variant, nil),
		vframes:      prometheus.NewDesc("shopcast_variant_ingest_frames_total", "Video frames received for a variant.", variant, nil),
		vparts:       prometheus.NewDesc("shopcast_variant_parts_total", "LL-HLS parts a variant published.", variant, nil),
		vsegments:    prometheus.NewDesc("shopcast_variant_segments_total", "Media segments a variant completed (not those it listed as gaps).", variant, nil),
		vconnects:    prometheus.NewDesc("shopcast_variant_publisher_connects_total", "Publications of a variant started.", variant, nil),
		vdisconnects: prometheus.NewDesc("shopcast_variant_publisher_disconnects_total", "Publications of a variant ended.", variant, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *streamCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.bytes, c.frames, c.connects, c.disconnects, c.parts, c.segments,
		c.lag, c.blocked, c.viewers, c.dropped, c.cuesPosted, c.cuesActive, c.streams, c.aligned,
		c.vbytes, c.vframes, c.vparts, c.vsegments, c.vconnects, c.vdisconnects} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *streamCollector) Collect(ch chan<- prometheus.Metric) {
	snap := c.m.Packager.Stats()
	now := c.m.now()
	viewers, dropped := c.m.viewers.count(now)

	// Gauges are summed by label; the cue store is read outside c.mu.
	active := map[string]int{}
	if c.m.Cues != nil {
		for _, st := range snap.Streams {
			recs, err := c.m.Cues.OpenCues(st.Name)
			if err != nil {
				c.m.Logger.Warn("metrics: reading open cues", "stream", st.Name, "err", err)
				continue
			}
			for i := range recs {
				if recs[i].StateAt(now) == cues.StateActive {
					active[st.Name]++
				}
			}
		}
	}

	c.mu.Lock()
	live := make(map[string]bool, len(snap.Streams))
	for _, st := range snap.Streams {
		live[st.Name] = true
	}
	for _, name := range c.labels.retain(live) {
		delete(c.totals, name)
		delete(c.posted, name)
		for k := range c.vtotals {
			if k.stream == name {
				delete(c.vtotals, k)
			}
		}
	}
	for name := range c.last {
		if !live[name] {
			delete(c.last, name)
		}
	}
	seenV := map[variantKey]bool{}
	blocked := map[string]int64{}
	for i := range snap.Streams {
		st := &snap.Streams[i]
		lbl := c.labels.label(st.Name)
		cur := flatten(st)
		c.fold(lbl, st.Name, &cur)
		blocked[lbl] += st.Blocked
		for j := range st.Variants {
			v := &st.Variants[j]
			// The packager bounds a stream's variants; the streams folded
			// into OtherStream share one variant label too.
			vl := variantKey{lbl, v.Name}
			if lbl == OtherStream {
				vl.variant = OtherStream
			}
			key := variantKey{st.Name, v.Name}
			seenV[key] = true
			c.foldVariant(vl, key, flattenVariant(v))
		}
	}
	for k := range c.vlast {
		if !seenV[k] {
			delete(c.vlast, k)
		}
	}
	for k, t := range c.vtotals {
		counter := func(d *prometheus.Desc, v uint64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), k.stream, k.variant)
		}
		counter(c.vbytes, t[wVideoBytes])
		counter(c.vframes, t[wVideoFrames])
		counter(c.vparts, t[wParts])
		counter(c.vsegments, t[wSegments])
		counter(c.vconnects, t[wPublishes])
		counter(c.vdisconnects, t[wDisconnects])
	}
	byLabel := func(counts map[string]int) map[string]float64 {
		out := map[string]float64{}
		for name, n := range counts {
			out[c.labels.lookup(name)] += float64(n)
		}
		return out
	}
	viewersBy, activeBy := byLabel(viewers), byLabel(active)
	for lbl, t := range c.totals {
		c.emit(ch, lbl, t)
		ch <- prometheus.MustNewConstMetric(c.blocked, prometheus.GaugeValue, float64(blocked[lbl]), lbl)
		ch <- prometheus.MustNewConstMetric(c.viewers, prometheus.GaugeValue, viewersBy[lbl], lbl)
		ch <- prometheus.MustNewConstMetric(c.cuesPosted, prometheus.CounterValue, float64(c.posted[lbl]), lbl)
		if c.m.Cues != nil {
			ch <- prometheus.MustNewConstMetric(c.cuesActive, prometheus.GaugeValue, activeBy[lbl], lbl)
		}
	}
	c.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(dropped))
	ch <- prometheus.MustNewConstMetric(c.streams, prometheus.GaugeValue, float64(len(snap.Streams)))
}

// fold adds the growth of stream name's counters since the last scrape to
// label lbl's totals (addGrowth).
func (c *streamCollector) fold(lbl, name string, cur *counters) {
	t := c.totals[lbl]
	if t == nil {
		t = &counters{}
		c.totals[lbl] = t
	}
	prev, seen := c.last[name]
	addGrowth(t[:], cur[:], prev[:], seen)
	c.last[name] = *cur
}

// foldVariant is fold for a variant's counters: key's growth since the
// last scrape goes to label pair lbl.
func (c *streamCollector) foldVariant(lbl, key variantKey, cur variantCounters) {
	t := c.vtotals[lbl]
	if t == nil {
		t = &variantCounters{}
		c.vtotals[lbl] = t
	}
	prev, seen := c.vlast[key]
	addGrowth(t[:], cur[:], prev[:], seen)
	c.vlast[key] = cur
}

func (c *streamCollector) emit(ch chan<- prometheus.Metric, lbl string, t *counters) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	counter(c.bytes, t[vVideoBytes], lbl, "video")
	counter(c.bytes, t[vAudioBytes], lbl, "audio")
	counter(c.frames, t[vVideoFrames], lbl, "video")
	counter(c.frames, t[vAudioFrames], lbl, "audio")
	counter(c.connects, t[vPublishes], lbl)
	counter(c.disconnects, t[vDisconnects], lbl)
	counter(c.parts, t[vParts], lbl)
	counter(c.segments, t[vSegments], lbl)
	counter(c.aligned, t[vGapSegments], lbl, "gap_segment")
	counter(c.aligned, t[vGapParts], lbl, "gap_part")
	counter(c.aligned, t[vOffGOP], lbl, "off_gop")
	counter(c.aligned, t[vAlignDropped], lbl, "dropped_frame")
	buckets := make(map[float64]uint64, len(packager.LagBuckets))
	for i, b := range packager.LagBuckets {
		buckets[b.Seconds()] = t[vLagBuckets+i]
	}
	ch <- prometheus.MustNewConstHistogram(c.lag, t[vLagCount], float64(t[vLagSumNs])/1e9, buckets, lbl)
}

// cuePosted counts a cue posted to a live stream.
func (c *streamCollector) cuePosted(stream string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.posted[c.labels.label(stream)]++
}

// streamLabels gives live streams their stream label: each of the first
// max streams seen its own name for as long as it stays live, every later
// one OtherStream, also for as long as it stays live (a stream never moves
// between labels, so no counter is counted twice).
type streamLabels struct {
	max int
	own map[string]bool // live streams seen: true with their own label
	n   int             // streams with their own label
}

// label returns name's label, assigning one to a stream not seen yet.
func (l *streamLabels) label(name string) string {
	own, seen := l.own[name]
	if !seen {
		own = l.n < l.max && name != OtherStream
		l.own[name] = own
		if own {
			l.n++
		}
	}
	if own {
		return name
	}
	return OtherStream
}

// lookup returns name's label without assigning one: OtherStream for a
// stream not seen.
func (l *streamLabels) lookup(name string) string {
	if l.own[name] {
		return name
	}
	return OtherStream
}

// retain forgets the streams that are not live any more and returns the
// labels that went with them.
func (l *streamLabels) retain(live map[string]bool) (released []string) {
	for name, own := range l.own {
		if live[name] {
			continue
		}
		delete(l.own, name)
		if own {
			l.n--
			released = append(released, name)
		}
	}
	return released
}

// addGrowth adds to total the growth of the counters cur over prev, their
// values at the last scrape (seen: there was one). A counter below its
// last value means the stream started again from zero: all of its value
// is growth.
func addGrowth(total, cur, prev []uint64, seen bool) {
	restarted := !seen
	for i := range cur {
		if cur[i] < prev[i] {
			restarted = true
		}
	}
	for i := range cur {
		if restarted {
			total[i] += cur[i]
		} else {
			total[i] += cur[i] - prev[i]
		}
	}
}
