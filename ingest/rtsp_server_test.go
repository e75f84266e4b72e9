package ingest_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"

	"github.com/shopcast/shopcast/ingest"
	"github.com/shopcast/shopcast/packager"
)

func dur90k(ticks int64) time.Duration {
	return time.Duration(ticks) * time.Second / 90000
}

func near(a, b, tolerance time.Duration) bool {
	d := a - b
	return d <= tolerance && d >= -tolerance
}

func TestRTSPServerPublish(t *testing.T) {
	cases := []struct {
		name    string
		fixture string
		opts    publishOpts
	}{
		{"h264_aac_tcp_sdp_params", "rtsp_h264_aac.ts", publishOpts{transport: gortsplib.TransportTCP, sdpParams: true, sr: 10}},
		{"h264_aac_udp_inband_params", "rtsp_h264_aac.ts", publishOpts{transport: gortsplib.TransportUDP}},
		{"h265_aac_tcp_sdp_params", "rtsp_h265_aac.ts", publishOpts{transport: gortsplib.TransportTCP, sdpParams: true}},
		{"h265_aac_udp_inband_params", "rtsp_h265_aac.ts", publishOpts{transport: gortsplib.TransportUDP, sr: 10}},
		{"h264_opus_tcp_no_marker", "rtsp_h264_opus.ts", publishOpts{transport: gortsplib.TransportTCP, noMarker: true}},
		{"h264_opus_udp_sdp_params", "rtsp_h264_opus.ts", publishOpts{transport: gortsplib.TransportUDP, sdpParams: true, sr: 10}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			log, _ := newLog(t)
			sink := newRecSink(nil)
			srv := &ingest.RTSPServer{Sink: sink, Logger: log}
			addr := startServer(t, srv, tc.opts.transport == gortsplib.TransportUDP)

			fx := loadFixture(t, tc.fixture)
			p := newTestPublisher(t, fx, tc.opts)
			if err := p.start("rtsp://" + addr + "/live/cam1"); err != nil {
				t.Fatal(err)
			}
			defer p.close()
			frames := p.schedule()
			var pace time.Duration
			if tc.opts.transport == gortsplib.TransportUDP {
				pace = 2 * time.Millisecond
			}
			if err := p.send(frames, 0, pace); err != nil {
				t.Fatal(err)
			}

			var sentV, sentA []sentFrame
			for _, f := range frames {
				if f.video {
					sentV = append(sentV, f)
				} else {
					sentA = append(sentA, f)
				}
			}
			if tc.opts.noMarker {
				// Without marker bits a frame ends when the next one starts:
				// the last one stays in the depacketizer.
				sentV = sentV[:len(sentV)-1]
			}
			sink.wait(t, "every unit", func() bool {
				if len(sink.pubs) != 1 {
					return false
				}
				var v, a int
				for _, u := range sink.pubs[0].units {
					if u.Track.Codec.IsVideo() {
						v++
					} else {
						a++
					}
				}
				return v >= len(sentV) && a >= len(sentA)
			})
			pub := sink.snapshot()[0]
			checkPublication(t, fx, pub, sentV, sentA, tc.opts)

			p.close()
			sink.wait(t, "publication closed", func() bool { return sink.pubs[0].closed })
		})
	}
}

// checkPublication compares what the sink received with what was sent.
func checkPublication(t *testing.T, fx *fixture, pub recPub, sentV, sentA []sentFrame, opts publishOpts) {
	t.Helper()
	if pub.info.Name != "cam1" || pub.info.Proto != "rtsp" || pub.info.Remote == "" {
		t.Errorf("publish info %+v", pub.info)
	}
	if len(pub.info.Tracks) != 2 {
		t.Fatalf("%d tracks, want 2", len(pub.info.Tracks))
	}
	for i, tr := range pub.info.Tracks {
		if tr.ID != i+1 {
			t.Errorf("track %d has ID %d", i, tr.ID)
		}
	}
	switch c := pub.info.Tracks[0].Codec.(type) {
	case *codecs.H264:
		if fx.h265 || !bytes.Equal(c.SPS, fx.sps) || !bytes.Equal(c.PPS, fx.pps) {
			t.Errorf("H.264 parameters do not match the stream's")
		}
	case *codecs.H265:
		if !fx.h265 || !bytes.Equal(c.VPS, fx.vps) || !bytes.Equal(c.SPS, fx.sps) || !bytes.Equal(c.PPS, fx.pps) {
			t.Errorf("H.265 parameters do not match the stream's")
		}
	default:
		t.Errorf("video codec %T", c)
	}
	switch c := pub.info.Tracks[1].Codec.(type) {
	case *codecs.MPEG4Audio:
		if fx.aac == nil || c.Config != *fx.aac {
			t.Errorf("AAC config %+v", c.Config)
		}
		if pub.info.Tracks[1].ClockRate != fx.aac.SampleRate {
			t.Errorf("AAC clock rate %d", pub.info.Tracks[1].ClockRate)
		}
	case *codecs.Opus:
		if c.ChannelCount != 2 {
			t.Errorf("Opus channels %d", c.ChannelCount)
		}
	default:
		t.Errorf("audio codec %T", c)
	}

	var gotV, gotA []ingest.Unit
	for _, u := range pub.units {
		if u.Track == pub.info.Tracks[0] {
			gotV = append(gotV, u)
		} else {
			gotA = append(gotA, u)
		}
	}
	if len(gotV) != len(sentV) || len(gotA) != len(sentA) {
		t.Fatalf("got %d video and %d audio units, sent %d and %d", len(gotV), len(gotA), len(sentV), len(sentA))
	}

	// Video: every access unit, parameter sets in front of key frames, PTS
	// exact relative to the first frame, DTS in decode order.
	const exact = time.Microsecond
	var withNTP int
	for i, u := range gotV {
		s := sentV[i]
		if want := fx.withParams(s.au); !slices.EqualFunc(u.AU, want, bytes.Equal) {
			t.Fatalf("video unit %d: %d NAL units, want %d (or different bytes)", i, len(u.AU), len(want))
		}
		if got, want := u.PTS-gotV[0].PTS, dur90k(s.pts-sentV[0].pts); !near(got, want, exact) {
			t.Errorf("video unit %d: PTS +%v, want +%v", i, got, want)
		}
		if u.DTS > u.PTS {
			t.Errorf("video unit %d: DTS %v after PTS %v", i, u.DTS, u.PTS)
		}
		if i > 0 && u.DTS <= gotV[i-1].DTS {
			t.Errorf("video unit %d: DTS %v not after %v", i, u.DTS, gotV[i-1].DTS)
		}
		// Once the extractor has seen the B-frame pattern (first GOP),
		// the DTS is the encoder's, up to a constant.
		if i >= 30 {
			if got, want := u.DTS-gotV[i-1].DTS, dur90k(s.dts-sentV[i-1].dts); !near(got, want, exact) {
				t.Errorf("video unit %d: DTS step %v, want %v", i, got, want)
			}
		}
		if !u.NTP.IsZero() {
			withNTP++
			if want := srNTP.Add(dur90k(s.pts - sentV[opts.sr-1].pts)); !near(u.NTP.Sub(want), 0, time.Millisecond) {
				t.Errorf("video unit %d: NTP %v, want %v", i, u.NTP, want)
			}
		}
	}
	if opts.sr > 0 && withNTP < len(gotV)/2 {
		t.Errorf("%d of %d video units have NTP after a sender report at frame %d", withNTP, len(gotV), opts.sr)
	}
	if opts.sr == 0 && withNTP > 0 {
		t.Errorf("%d video units have NTP without a sender report", withNTP)
	}

	// Audio: every frame, PTS exact relative to the first.
	for i, u := range gotA {
		s := sentA[i]
		if !bytes.Equal(u.Frame, s.frame) || u.AU != nil {
			t.Fatalf("audio unit %d differs", i)
		}
		if got, want := u.PTS-gotA[0].PTS, dur90k(s.pts-sentA[0].pts); !near(got, want, exact) {
			t.Errorf("audio unit %d: PTS +%v, want +%v", i, got, want)
		}
		if u.DTS != u.PTS {
			t.Errorf("audio unit %d: DTS %v != PTS %v", i, u.DTS, u.PTS)
		}
	}

	// Across tracks, gortsplib aligns the first packet of each track by its
	// arrival time: close, not exact.
	got := gotA[0].PTS - gotV[0].PTS
	want := dur90k(sentA[0].pts - sentV[0].pts)
	if !near(got, want, 100*time.Millisecond) {
		t.Errorf("audio starts %v after video, sent %v", got, want)
	}
}

// TestRTSPServerPackager publishes into the real packager and checks the
// playlist covers the clip.
func TestRTSPServerPackager(t *testing.T) {
	log, _ := newLog(t)
	pk := packager.New(packager.Config{TargetDuration: time.Second, PartTarget: 200 * time.Millisecond}, log)
	t.Cleanup(pk.Close) // after the server has stopped
	sink := newRecSink(pk)
	srv := &ingest.RTSPServer{Sink: sink, Logger: log}
	addr := startServer(t, srv, false)

	fx := loadFixture(t, "rtsp_h264_aac.ts")
	p := newTestPublisher(t, fx, publishOpts{transport: gortsplib.TransportTCP, sdpParams: true})
	if err := p.start("rtsp://" + addr + "/live/shop"); err != nil {
		t.Fatal(err)
	}
	// The clip twice: the DTS extractor starts the first GOP short (its
	// first DTS is the key frame's PTS), so one clip makes one segment.
	frames := p.schedule()
	clipDur := fx.video[len(fx.video)-1].pts - fx.video[0].pts + 3000
	for i := range int64(2) {
		if err := p.send(frames, i*clipDur, 0); err != nil {
			t.Fatal(err)
		}
	}
	nv := 0
	for _, f := range frames {
		if f.video {
			nv += 2
		}
	}
	sink.wait(t, "every video unit", func() bool {
		return len(sink.pubs) == 1 && len(unitsOf[*codecs.H264](*sink.pubs[0])) == nv
	})
	p.close()
	sink.wait(t, "publication closed", func() bool { return sink.pubs[0].closed })

	res, err := pk.Fetch(context.Background(), packager.Request{Stream: "shop", File: "stream.m3u8", MSN: -1, Part: -1})
	if err != nil {
		t.Fatal(err)
	}
	pl := string(res.Body)
	var total time.Duration
	segs := 0
	for _, l := range strings.Split(pl, "\n") {
		if d, ok := strings.CutPrefix(l, "#EXTINF:"); ok {
			var sec float64
			fmt.Sscanf(d, "%f", &sec)
			total += time.Duration(sec * float64(time.Second))
			segs++
		}
	}
	clip := dur90k(2*clipDur - 3000)
	if segs < 3 || !near(total, clip, 100*time.Millisecond) {
		t.Errorf("%d segments, %v of media, want the clip's %v:\n%s", segs, total, clip, pl)
	}
	for _, file := range []string{"index.m3u8", "init0.mp4"} {
		res, err := pk.Fetch(context.Background(), packager.Request{Stream: "shop", File: file, MSN: -1, Part: -1})
		if err != nil || len(res.Body) == 0 {
			t.Errorf("%s: %v", file, err)
		}
	}
	if !strings.Contains(pl, "#EXT-X-PART:") {
		t.Errorf("no parts:\n%s", pl)
	}
}

// TestRTSPServerAuth publishes with the key in the path and with the key as
// the Basic password.
func TestRTSPServerAuth(t *testing.T) {
	log, _ := newLog(t)
	sink := newRecSink(nil)
	srv := &ingest.RTSPServer{Sink: sink, Logger: log,
		Auth: &ingest.Auth{Enabled: true, Keys: map[string]string{"s3cret": "shop1"}}}
	addr := startServer(t, srv, false)
	fx := loadFixture(t, "rtsp_h264_aac.ts")

	for i, u := range []string{
		"rtsp://" + addr + "/live/s3cret",
		"rtsp://encoder:s3cret@" + addr + "/live/shop1",
	} {
		p := newTestPublisher(t, fx, publishOpts{transport: gortsplib.TransportTCP})
		if err := p.start(u); err != nil {
			t.Fatalf("%d: %v", i, err)
		}
		if err := p.send(p.schedule()[:10], 0, 0); err != nil {
			t.Fatal(err)
		}
		sink.wait(t, "publication", func() bool { return len(sink.pubs) == i+1 && len(sink.pubs[i].units) > 0 })
		p.close()
		if got := sink.snapshot()[i].info.Name; got != "shop1" {
			t.Errorf("%d: published as %q, want the public name shop1", i, got)
		}
	}
}

// TestRTSPServerReplace: a second publisher of the same key replaces the
// first, whose session ends.
func TestRTSPServerReplace(t *testing.T) {
	log, logs := newLog(t)
	sink := newRecSink(nil)
	reg := ingest.NewRegistry(log)
	srv := &ingest.RTSPServer{Sink: sink, Logger: log, Registry: reg}
	addr := startServer(t, srv, false)
	fx := loadFixture(t, "rtsp_h264_aac.ts")

	first := newTestPublisher(t, fx, publishOpts{transport: gortsplib.TransportTCP})
	if err := first.start("rtsp://" + addr + "/live/cam"); err != nil {
		t.Fatal(err)
	}
	defer first.close()
	frames := first.schedule()
	if err := first.send(frames[:10], 0, 0); err != nil {
		t.Fatal(err)
	}
	sink.wait(t, "first publication", func() bool { return len(sink.pubs) == 1 && len(sink.pubs[0].units) > 0 })

	second := newTestPublisher(t, fx, publishOpts{transport: gortsplib.TransportTCP})
	if err := second.start("rtsp://" + addr + "/live/cam"); err != nil {
		t.Fatal(err)
	}
	defer second.close()
	if err := second.send(frames[:10], 0, 0); err != nil {
		t.Fatal(err)
	}
	sink.wait(t, "second publication, first closed", func() bool {
		return len(sink.pubs) == 2 && sink.pubs[0].closed && len(sink.pubs[1].units) > 0 && !sink.pubs[1].closed
	})
	logs.waitLine(t, "publisher replaced", "stream=cam")

	// The first publisher's connection is gone.
	done := make(chan error, 1)
	go func() { done <- first.c.Wait() }()
	select {
	case <-done:
	case <-time.After(waitTimeout):
		t.Fatal("the replaced publisher's connection is still open")
	}
	if pub, ok := reg.Lookup("cam"); !ok || pub.Proto != "rtsp" {
		t.Errorf("registry holder %+v %v", pub, ok)
	}
}
