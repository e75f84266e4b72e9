package packager

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shopcast/shopcast/ingest"
)

// LagBuckets are the upper bounds of the publish-to-deliverable lag
// histogram (StreamStats.Lag): from 100 µs, where an idle packager answers,
// to 1 s, three parts late.
var LagBuckets = [...]time.Duration{
	100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond,
	10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond, time.Second,
}

// Stats is a snapshot of the packager's counters, for metrics. Counters only
// grow for as long as a stream name stays in the Manager (a publisher
// coming back after the grace period continues them); they start again
// from zero when a removed stream is published afresh.
type Stats struct {
	// Blocked is the number of requests waiting now, across all streams.
	Blocked int64
	// Streams are the streams, sorted by name.
	Streams []StreamStats
}

// StreamStats are one stream's counters.
type StreamStats struct {
	Name string
	// Video and Audio count what publishers wrote (WriteUnit), keyframes
	// awaited at a start included.
	Video, Audio TrackStats
	// Parts and Segments count those published.
	Parts, Segments int64
	// Publishes counts publications that started; Disconnects those that
	// ended (publisher gone, replaced, or server shutdown).
	Publishes, Disconnects int64
	// Blocked is the number of this stream's requests waiting now.
	Blocked int64
	// Lag is the publish-to-deliverable lag of the parts: from the WriteUnit
	// call that completed a part to the part being published.
	Lag Histogram
	// Aligned counts what an aligned timeline lacked; zero otherwise.
	Aligned AlignedStats
	// Variants are the stream's variants' counters, by name; at most
	// Config.MaxVariants and those gone since whose counters are kept.
	Variants []VariantStats
}

// VariantStats are one variant's counters. Its audio is the source's,
// counted in StreamStats.Audio.
type VariantStats struct {
	Name string
	// Video counts what its publishers wrote.
	Video TrackStats
	// Parts and Segments count those published (gap segments not).
	Parts, Segments int64
	// Publishes and Disconnects count its publications.
	Publishes, Disconnects int64
}

// AlignedStats count where a stream on the aligned timeline
// (Config.AlignedTimeline) lacked media that a redundant node fed the same
// encoder may have had.
type AlignedStats struct {
	// GapSegments counts the segments listed with EXT-X-GAP (publisher
	// gone, keyframe missing); GapParts the GAP=YES parts in segments that
	// have media (frames dropped).
	GapSegments, GapParts int64
	// OffGOP counts the complete segments whose duration is off
	// TargetDuration by more than half a frame: the encoder's keyframe
	// interval is not the target duration, or frames were missing.
	OffGOP int64
	// Dropped counts the lead frames dropped for want of a keyframe on the
	// grid (the frames after a missing keyframe, or before the first).
	Dropped int64
}

// TrackStats count the units of one kind of track.
type TrackStats struct {
	Bytes  int64 // payload bytes: NAL units, OBUs or audio frames
	Frames int64
}

// Histogram is a cumulative histogram with the bounds of LagBuckets.
type Histogram struct {
	// Buckets[i] counts observations <= LagBuckets[i].
	Buckets [len(LagBuckets)]uint64
	Count   uint64
	Sum     time.Duration
}

// streamStats are a stream's counters, shared by the Stream values that
// carry one name while it stays in the Manager. Atomics: Stats reads them
// without the stream's lock.
type streamStats struct {
	videoBytes, videoFrames atomic.Int64
	audioBytes, audioFrames atomic.Int64
	parts, segments         atomic.Int64
	publishes, disconnects  atomic.Int64
	blocked                 atomic.Int64

	// The aligned timeline's (aligned.go): what this node lacked.
	alignedGapSegments, alignedGapParts atomic.Int64
	alignedOffGOP, alignedDropped       atomic.Int64

	lagBuckets [len(LagBuckets)]atomic.Uint64 // per bucket, not cumulative
	lagCount   atomic.Uint64
	lagSum     atomic.Int64

	// vmu guards variants; it is taken under s.mu (by a variant's start
	// and end) and by Stats alone, never the other way round.
	vmu      sync.Mutex
	variants map[string]*variantStats
}

// variant returns the counters of variant name, kept across its
// publications (and the Stream values of the name).
func (st *streamStats) variant(name string) *variantStats {
	st.vmu.Lock()
	defer st.vmu.Unlock()
	if st.variants == nil {
		st.variants = map[string]*variantStats{}
	}
	v := st.variants[name]
	if v == nil {
		v = &variantStats{}
		st.variants[name] = v
	}
	return v
}

// forgetVariant drops a gone variant's counters once more than keep are
// held, so that a publisher cycling through names cannot grow them
// without bound. Counters of a name that comes back start from zero.
func (st *streamStats) forgetVariant(name string, keep int) {
	st.vmu.Lock()
	defer st.vmu.Unlock()
	if len(st.variants) > keep {
		delete(st.variants, name)
	}
}

// unit counts a unit a publisher wrote.
func (st *streamStats) unit(video bool, u *ingest.Unit) {
	if !video {
		st.audioBytes.Add(int64(len(u.Frame)))
		st.audioFrames.Add(1)
		return
	}
	n := 0
	for _, nalu := range u.AU {
		n += len(nalu)
	}
	st.videoBytes.Add(int64(n))
	st.videoFrames.Add(1)
}

// part counts a published part and, when it was completed by a unit being
// written at unitAt (zero for a part a publisher's end flushed), its lag.
func (st *streamStats) part(unitAt time.Time) {
	st.parts.Add(1)
	if unitAt.IsZero() {
		return
	}
	lag := time.Since(unitAt)
	if i, _ := slices.BinarySearch(LagBuckets[:], lag); i < len(LagBuckets) {
		st.lagBuckets[i].Add(1)
	}
	st.lagSum.Add(int64(lag))
	st.lagCount.Add(1) // last: see snapshot
}

// disconnect counts a publication's first Close.
func (st *streamStats) disconnect(alreadyDone bool) {
	if !alreadyDone {
		st.disconnects.Add(1)
	}
}

func (st *streamStats) snapshot(name string) StreamStats {
	out := StreamStats{
		Name:        name,
		Video:       TrackStats{Bytes: st.videoBytes.Load(), Frames: st.videoFrames.Load()},
		Audio:       TrackStats{Bytes: st.audioBytes.Load(), Frames: st.audioFrames.Load()},
		Parts:       st.parts.Load(),
		Segments:    st.segments.Load(),
		Publishes:   st.publishes.Load(),
		Disconnects: st.disconnects.Load(),
		Blocked:     st.blocked.Load(),
		Aligned: AlignedStats{
			GapSegments: st.alignedGapSegments.Load(), GapParts: st.alignedGapParts.Load(),
			OffGOP: st.alignedOffGOP.Load(), Dropped: st.alignedDropped.Load(),
		},
	}
	st.vmu.Lock()
	for name, v := range st.variants {
		out.Variants = append(out.Variants, VariantStats{
			Name:  name,
			Video: TrackStats{Bytes: v.videoBytes.Load(), Frames: v.videoFrames.Load()},
			Parts: v.parts.Load(), Segments: v.segments.Load(),
			Publishes: v.publishes.Load(), Disconnects: v.disconnects.Load(),
		})
	}
	st.vmu.Unlock()
	slices.SortFunc(out.Variants, func(a, b VariantStats) int { return strings.Compare(a.Name, b.Name) })
	// The count is read first and counted last: an observation racing the
	// snapshot can only raise a bucket above its share of the count, and
	// the clamp keeps the cumulative buckets monotonic and within it.
	out.Lag.Count = st.lagCount.Load()
	out.Lag.Sum = time.Duration(st.lagSum.Load())
	var cum uint64
	for i := range st.lagBuckets {
		cum += st.lagBuckets[i].Load()
		out.Lag.Buckets[i] = min(cum, out.Lag.Count)
	}
	return out
}

// Stats returns a snapshot of every stream's counters. It takes no stream's
// lock: publishing is not slowed by a scrape.
func (m *Manager) Stats() Stats {
	m.mu.Lock()
	streams := make([]*Stream, 0, len(m.streams))
	for _, s := range m.streams {
		streams = append(streams, s)
	}
	m.mu.Unlock()
	out := Stats{Blocked: m.blocked.Load(), Streams: make([]StreamStats, 0, len(streams))}
	for _, s := range streams {
		out.Streams = append(out.Streams, s.stats.snapshot(s.name))
	}
	slices.SortFunc(out.Streams, func(a, b StreamStats) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// variantStats are a variant's counters, read by Stats without the
// stream's lock.
type variantStats struct {
	videoBytes, videoFrames atomic.Int64
	parts, segments         atomic.Int64
	publishes, disconnects  atomic.Int64
}

// unit counts a unit a variant's publisher wrote.
func (st *variantStats) unit(u *ingest.Unit) {
	n := 0
	for _, nalu := range u.AU {
		n += len(nalu)
	}
	st.videoBytes.Add(int64(n))
	st.videoFrames.Add(1)
}
