package packager

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopcast/shopcast/ingest"
)

// BenchmarkWriteUnit feeds a 30 fps H.264 + AAC stream (about 47 audio
// frames a second) through a publication; an op is one WriteUnit. With
// cues, events of one second arrive at that rate (at media times, so that
// no call waits for a frame), each with a 400-byte ID3 emsg and DATERANGE,
// as the cue API's do: a window holds about a thousand of them.
func BenchmarkWriteUnit(b *testing.B) {
	for _, rate := range []int{0, 50} {
		b.Run(fmt.Sprintf("cues=%d/s", rate), func(b *testing.B) { benchmarkWriteUnit(b, rate, Config{}) })
	}
	// The aligned timeline's cuts (aligned.go) against writeLead's.
	b.Run("cues=0/s/aligned", func(b *testing.B) { benchmarkWriteUnit(b, 0, Config{AlignedTimeline: true}) })
}

func benchmarkWriteUnit(b *testing.B, cueRate int, cfg Config) {
	m := New(cfg, nil)
	defer m.Close()
	sy, info := newSynth(b)
	pub, err := m.Publish(info)
	if err != nil {
		b.Fatal(err)
	}
	s, _ := m.Stream("test")
	// The units of one GOP, sent again and again with later timestamps.
	units, gop := gopUnits(sy)
	tag := testID3(strings.Repeat("x", 400))
	var cues int
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		u := units[i%len(units)]
		shift := time.Duration(i/len(units)) * gop
		u.PTS += shift
		u.DTS += shift
		for cueRate > 0 && time.Duration(cues)*time.Second < u.DTS*time.Duration(cueRate) {
			id := fmt.Sprintf("c%d", cues)
			cues++
			if _, err := s.AddEvent(Event{
				ID: id, Time: u.DTS + 10*time.Millisecond, Duration: time.Second,
				ID3: tag, DateRange: eventDateRange(id),
			}); err != nil {
				b.Fatal(err)
			}
		}
		if err := pub.WriteUnit(&u); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBlockedFanout measures how long N playlist requests blocked on
// the next part take to return once the frame that completes it is written:
// from the start of that WriteUnit until the last of the N has its playlist.
// It reports the median and 99th percentile over the iterations.
func BenchmarkBlockedFanout(b *testing.B) {
	for _, n := range []int{1, 100, 1000, 5000} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			m := New(Config{}, nil)
			defer m.Close()
			sy, info := newSynth(b)
			pub, err := m.Publish(info)
			if err != nil {
				b.Fatal(err)
			}
			sy.pub = pub
			sy.frames(70)
			s, _ := m.Stream("test")
			nextPart := func() int64 {
				s.mu.Lock()
				defer s.mu.Unlock()
				return s.nextPart
			}

			// N viewers, each fetching the request it is handed.
			reqs := make(chan Request)
			var done sync.WaitGroup
			var failed sync.Once
			var fail error
			for range n {
				go func() {
					for req := range reqs {
						if _, err := m.Fetch(context.Background(), req); err != nil {
							failed.Do(func() { fail = err })
						}
						done.Done()
					}
				}()
			}
			defer close(reqs)

			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				l, k, _ := liveEdge(b, m)
				done.Add(n)
				for range n {
					reqs <- mediaReq(l, k+1, SkipNone)
				}
				eventually(b, 10*time.Second, "viewers to block", func() bool { return m.Blocked() == int64(n) })
				b.StartTimer()
				before := nextPart()
				var start time.Time
				for nextPart() == before {
					start = time.Now()
					sy.next()
				}
				done.Wait()
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			if fail != nil {
				b.Fatal(fail)
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		})
	}
}

// BenchmarkVariants is BenchmarkWriteUnit's stream with 0, 1 or 2 variants
// following it (a multitrack publisher: each video unit comes again for
// every variant, at the same timestamps); an op is one source unit and, for
// a video unit, its variants' units. Each variant adds what the source
// costs for its video (73 allocations and 11 KB an op on 2026-12-03), three
// quarters of it the marshalling of its parts (mediacommon's fmp4, through
// go-mp4's reflection), as for the source's own parts; the shared audio
// samples are not copied.
func BenchmarkVariants(b *testing.B) {
	for _, nv := range []int{0, 1, 2} {
		b.Run(fmt.Sprintf("variants=%d", nv), func(b *testing.B) {
			m := New(Config{}, nil)
			defer m.Close()
			sy, info := newSynth(b)
			pub, err := m.Publish(info)
			if err != nil {
				b.Fatal(err)
			}
			var vpubs []ingest.Publication
			var vtracks []*ingest.Track
			for i := range nv {
				tr := &ingest.Track{ID: 1, Codec: info.Tracks[0].Codec}
				vp, err := m.Publish(ingest.PublishInfo{Name: "test", Variant: fmt.Sprintf("v%d", i), Tracks: []*ingest.Track{tr}})
				if err != nil {
					b.Fatal(err)
				}
				vpubs, vtracks = append(vpubs, vp), append(vtracks, tr)
			}
			units, gop := gopUnits(sy)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				u := units[i%len(units)]
				shift := time.Duration(i/len(units)) * gop
				u.PTS += shift
				u.DTS += shift
				if err := pub.WriteUnit(&u); err != nil {
					b.Fatal(err)
				}
				if u.Track != sy.video {
					continue
				}
				for j, vp := range vpubs {
					vu := u
					vu.Track = vtracks[j]
					if err := vp.WriteUnit(&vu); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// gopUnits are the units of one GOP of sy, H.264 and AAC, for a benchmark to
// send again and again with later timestamps; gop is their duration.
func gopUnits(sy *synth) (units []ingest.Unit, gop time.Duration) {
	key := [][]byte{testSPS, testPPS, make([]byte, 20000)}
	key[2][0] = 0x65
	inter := [][]byte{make([]byte, 4000)}
	inter[0][0] = 0x41
	frame := make([]byte, 300)
	audioNext := time.Duration(0)
	for i := range sy.gop {
		dts := sy.frameTime(i)
		for audioNext <= dts {
			at := audioNext.Truncate(time.Millisecond)
			units = append(units, ingest.Unit{Track: sy.audio, PTS: at, DTS: at, Frame: frame})
			audioNext += 1024 * time.Second / 48000
		}
		au := inter
		if i == 0 {
			au = key
		}
		at := dts.Truncate(time.Millisecond)
		units = append(units, ingest.Unit{Track: sy.video, PTS: at, DTS: at, AU: au})
	}
	return units, time.Duration(sy.gop) * time.Second / time.Duration(sy.fps)
}
