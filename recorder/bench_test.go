package recorder

import (
	"runtime"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"

	"github.com/shopcast/shopcast/ingest"
	"github.com/shopcast/shopcast/packager"
)

// benchSPS is a 640x360 High profile SPS from x264 (packager's testSPS).
var (
	benchSPS = []byte{
		0x67, 0x64, 0x00, 0x1e, 0xac, 0xd9, 0x40, 0xa0, 0x2f, 0xf9, 0x70, 0x11,
		0x00, 0x00, 0x03, 0x00, 0x01, 0x00, 0x00, 0x03, 0x00, 0x3c, 0x0f, 0x16,
		0x2d, 0x96,
	}
	benchPPS = []byte{0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0}
)

// BenchmarkWriteUnitRecorded is packager's BenchmarkWriteUnit (a 30 fps
// H.264 + AAC stream through a publication, an op one WriteUnit) with and
// without the recorder's hooks: what recording adds to the live path.
//
//   - hooks=none: packager.Config.Hooks unset, as with record off.
//   - hooks=queue: the recorder's own Hooks, on a Recorder whose queue the
//     benchmark empties after each unit the way the writer goroutine takes
//     it (the whole queue at once), without writing: the allocations are
//     those of the live path alone. The writer's own work is on its
//     goroutine and in the record mode of cmd/shopcast-bench.
//
// Besides allocs/op it reports allocs/part, B/part and allocs/segment:
// one part is about 23 units (300 ms), one segment about 154, so
// allocations made once per segment do not show in allocs/op.
func BenchmarkWriteUnitRecorded(b *testing.B) {
	b.Run("hooks=none", func(b *testing.B) { benchmarkWriteUnitRecorded(b, nil) })
	b.Run("hooks=queue", func(b *testing.B) {
		r := New(Config{Dir: b.TempDir()})
		benchmarkWriteUnitRecorded(b, r)
	})
}

func benchmarkWriteUnitRecorded(b *testing.B, r *Recorder) {
	var cfg packager.Config
	if r != nil {
		cfg.Hooks = r.Hooks()
	}
	m := packager.New(cfg, nil)
	defer m.Close()
	video := &ingest.Track{ID: 1, Codec: &codecs.H264{SPS: benchSPS, PPS: benchPPS}}
	audio := &ingest.Track{ID: 2, Codec: &codecs.MPEG4Audio{Config: mpeg4audio.AudioSpecificConfig{
		Type: mpeg4audio.ObjectTypeAACLC, SampleRate: 48000, ChannelConfig: 2,
	}}}
	pub, err := m.Publish(ingest.PublishInfo{Name: "test", Proto: "rtmp", Remote: "127.0.0.1:1", Tracks: []*ingest.Track{video, audio}})
	if err != nil {
		b.Fatal(err)
	}
	defer pub.Close()

	// The units of one 2 s GOP, sent again and again with later
	// timestamps, as packager's BenchmarkWriteUnit does.
	const fps, gop = 30, 60
	key := [][]byte{benchSPS, benchPPS, make([]byte, 20000)}
	key[2][0] = 0x65
	inter := [][]byte{make([]byte, 4000)}
	inter[0][0] = 0x41
	frame := make([]byte, 300)
	var units []ingest.Unit
	audioNext := time.Duration(0)
	for i := range gop {
		dts := time.Duration(i) * time.Second / fps
		for audioNext <= dts {
			at := audioNext.Truncate(time.Millisecond)
			units = append(units, ingest.Unit{Track: audio, PTS: at, DTS: at, Frame: frame})
			audioNext += 1024 * time.Second / 48000
		}
		au := inter
		if i == 0 {
			au = key
		}
		at := dts.Truncate(time.Millisecond)
		units = append(units, ingest.Unit{Track: video, PTS: at, DTS: at, AU: au})
	}
	span := time.Duration(gop) * time.Second / fps

	counts := func() (parts, segments int64) {
		for _, st := range m.Stats().Streams {
			if st.Name == "test" {
				return st.Parts, st.Segments
			}
		}
		return 0, 0
	}
	// Allocations and parts are counted from the second GOP on: the first
	// sets the stream up.
	for i := range units {
		u := units[i]
		if err := pub.WriteUnit(&u); err != nil {
			b.Fatal(err)
		}
		r.takeQueue()
	}
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	parts0, segs0 := counts()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		u := units[i%len(units)]
		shift := time.Duration(1+i/len(units)) * span
		u.PTS += shift
		u.DTS += shift
		if err := pub.WriteUnit(&u); err != nil {
			b.Fatal(err)
		}
		r.takeQueue()
	}
	b.StopTimer()
	runtime.ReadMemStats(&ms1)
	parts1, segs1 := counts()
	allocs, bytes := float64(ms1.Mallocs-ms0.Mallocs), float64(ms1.TotalAlloc-ms0.TotalAlloc)
	if n := float64(parts1 - parts0); n > 0 {
		b.ReportMetric(allocs/n, "allocs/part")
		b.ReportMetric(bytes/n, "B/part")
	}
	if n := float64(segs1 - segs0); n > 0 {
		b.ReportMetric(allocs/n, "allocs/segment")
	}
}

// takeQueue empties the queue as the writer goroutine (run) takes it, and
// drops what it took. A nil r does nothing.
func (r *Recorder) takeQueue() {
	if r == nil {
		return
	}
	r.qmu.Lock()
	batch := r.queue
	r.queue = nil
	for _, it := range batch {
		switch {
		case it.seg != nil:
			r.qsegs--
		case it.ev != nil:
			r.qevents--
		}
	}
	r.qmu.Unlock()
}
