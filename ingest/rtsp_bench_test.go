package ingest_test

import (
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"

	"github.com/shopcast/shopcast/ingest"
	"github.com/shopcast/shopcast/packager"
)

// x264 -tune zerolatency, 1920x1080 High profile (no B-frames).
var (
	benchSPS, _ = hex.DecodeString("67640028acb403c0113f2e0220000003002000000791e30654")
	benchPPS, _ = hex.DecodeString("68ef0fcb")
)

// Synthetic 1080p30 at 6 Mbit/s with a key frame every second, the shape of
// an OBS or encoder stream for LL-HLS: a 100 KB IDR and 29 P-frames sharing
// the rest of the 750 KB second.
const (
	benchFPS      = 30
	benchBitrate  = 6_000_000
	benchIDRBytes = 100_000
)

// countSink counts units and forwards them, if next is set.
type countSink struct {
	next   ingest.Sink
	units  atomic.Int64
	target atomic.Int64
	done   chan struct{}
}

type countPub struct {
	s    *countSink
	next ingest.Publication
}

func (s *countSink) Publish(info ingest.PublishInfo) (ingest.Publication, error) {
	p := &countPub{s: s}
	if s.next != nil {
		n, err := s.next.Publish(info)
		if err != nil {
			return nil, err
		}
		p.next = n
	}
	return p, nil
}

func (p *countPub) WriteUnit(u *ingest.Unit) error {
	if p.s.units.Add(1) == p.s.target.Load() {
		close(p.s.done)
	}
	if p.next != nil {
		return p.next.WriteUnit(u)
	}
	return nil
}

func (p *countPub) WriteData(*ingest.Data) {}

func (p *countPub) Close() {
	if p.next != nil {
		p.next.Close()
	}
}

// benchSecond is one second of the stream as RTP interleaved in RTSP
// (RFC 2326 10.12), with the offsets of the RTP headers so that sequence
// numbers and timestamps can be advanced for the next second.
type benchSecond struct {
	buf     []byte
	headers []int
	frameOf []int // frame index of each packet
}

func buildBenchSecond(b *testing.B) *benchSecond {
	f := &format.H264{PayloadTyp: 96, PacketizationMode: 1, SPS: benchSPS, PPS: benchPPS}
	enc, err := f.CreateEncoder()
	if err != nil {
		b.Fatal(err)
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	pBytes := (benchBitrate/8 - benchIDRBytes) / (benchFPS - 1)
	s := &benchSecond{}
	for i := range benchFPS {
		var au [][]byte
		if i == 0 {
			// In-band parameter sets, as x264 repeats them.
			au = [][]byte{benchSPS, benchPPS, randomNALU(rnd, 0x65, benchIDRBytes)}
		} else {
			au = [][]byte{randomNALU(rnd, 0x41, pBytes)}
		}
		pkts, err := enc.Encode(au)
		if err != nil {
			b.Fatal(err)
		}
		for _, pkt := range pkts {
			pkt.SSRC = 0x5ca57
			raw, err := pkt.Marshal()
			if err != nil {
				b.Fatal(err)
			}
			s.headers = append(s.headers, len(s.buf)+4)
			s.frameOf = append(s.frameOf, i)
			s.buf = append(s.buf, '$', 0, byte(len(raw)>>8), byte(len(raw)))
			s.buf = append(s.buf, raw...)
		}
	}
	return s
}

func randomNALU(rnd *rand.Rand, header byte, size int) []byte {
	n := make([]byte, size)
	for i := range n {
		n[i] = byte(rnd.Uint32())
	}
	n[0] = header
	return n
}

// advance numbers the packets of second sec.
func (s *benchSecond) advance(sec int) {
	for i, off := range s.headers {
		seq := uint16(sec*len(s.headers) + i)
		ts := uint32(sec*90000 + s.frameOf[i]*90000/benchFPS)
		binary.BigEndian.PutUint16(s.buf[off+2:], seq)
		binary.BigEndian.PutUint32(s.buf[off+4:], ts)
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRTSPIngest measures the server side of RTSP ingest: one op is
// one second of a 1080p30 6 Mbit/s H.264 stream, sent as fast as the server
// takes it over TCP by a publisher that only writes prepared bytes. It
// reports the process CPU time per second of stream (the publisher's writes
// are included; they are a small share) and the allocations per frame.
//
//	go test -run '^$' -bench RTSPIngest -benchtime 10x ./ingest/
func BenchmarkRTSPIngest(b *testing.B) {
	var sps h264.SPS
	if err := sps.Unmarshal(benchSPS); err != nil || sps.Width() != 1920 || sps.Height() != 1080 {
		b.Fatalf("bench SPS: %v %dx%d", err, sps.Width(), sps.Height())
	}
	for _, bc := range []struct {
		name string
		next func() ingest.Sink
	}{
		{"discard", func() ingest.Sink { return nil }},
		{"packager", func() ingest.Sink { return packager.New(packager.Config{}, nil) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			log, _ := newLog(b)
			sink := &countSink{next: bc.next(), done: make(chan struct{})}
			if m, ok := sink.next.(*packager.Manager); ok {
				defer m.Close()
			}
			srv := &ingest.RTSPServer{Sink: sink, Logger: log}
			addr := startServer(b, srv, false)
			sec := buildBenchSecond(b)
			desc := &description.Session{Medias: []*description.Media{{
				Type:    description.MediaTypeVideo,
				Formats: []format.Format{&format.H264{PayloadTyp: 96, PacketizationMode: 1, SPS: benchSPS, PPS: benchPPS}},
			}}}
			r := dialRTSP(b, addr)
			if err := r.recordRaw("rtsp://"+addr+"/live/bench", desc); err != nil {
				b.Fatal(err)
			}
			sink.target.Store(int64(b.N * benchFPS))

			var ms0, ms1 runtime.MemStats
			runtime.ReadMemStats(&ms0)
			cpu0 := cpuTime()
			b.ResetTimer()
			for i := range b.N {
				sec.advance(i)
				if _, err := r.nc.Write(sec.buf); err != nil {
					b.Fatal(err)
				}
			}
			select {
			case <-sink.done:
			case <-time.After(time.Minute):
				b.Fatalf("%d of %d frames arrived", sink.units.Load(), b.N*benchFPS)
			}
			b.StopTimer()
			cpu := cpuTime() - cpu0
			runtime.ReadMemStats(&ms1)

			b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/stream-s")
			b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/float64(b.N*benchFPS), "allocs/frame")
			b.ReportMetric(float64(ms1.TotalAlloc-ms0.TotalAlloc)/float64(b.N)/1e6, "MB-alloc/stream-s")
			b.SetBytes(benchBitrate / 8)
		})
	}
}
