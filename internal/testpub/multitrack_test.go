package testpub

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/bluenviron/gortmplib"
	rtmpcodecs "github.com/bluenviron/gortmplib/pkg/codecs"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
)

// TestPublishMultitrack: an RTMP server's Reader (gortmplib's) finds one
// video track per file, the largest first, and the audio, and each video
// track's frames carry the same timestamps as the others'.
func TestPublishMultitrack(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	paths, err := EncodeLadder(ctx, t.TempDir(), 2*time.Second, 30, 30, 360, 240, 144)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		heights []int
		dts     [][]time.Duration
		audio   int
		err     error
	}
	done := make(chan result, 1)
	go func() {
		var res result
		defer func() { done <- res }()
		nc, err := ln.Accept()
		if err != nil {
			res.err = err
			return
		}
		defer nc.Close()
		_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
		sc := &gortmplib.ServerConn{RW: nc}
		if res.err = sc.Initialize(); res.err != nil {
			return
		}
		if res.err = sc.AcceptConn(); res.err != nil {
			return
		}
		r := &gortmplib.Reader{Conn: sc}
		if res.err = r.Initialize(); res.err != nil {
			return
		}
		for _, tr := range r.Tracks() {
			switch c := tr.Codec.(type) {
			case *rtmpcodecs.H264:
				var sps h264.SPS
				if err := sps.Unmarshal(c.SPS); err != nil {
					res.err = err
					return
				}
				i := len(res.heights)
				res.heights = append(res.heights, sps.Height())
				res.dts = append(res.dts, nil)
				r.OnDataH264(tr, func(_, dts time.Duration, au [][]byte) {
					if !isParamsOnly(au) {
						res.dts[i] = append(res.dts[i], dts)
					}
				})
			case *rtmpcodecs.MPEG4Audio:
				r.OnDataMPEG4Audio(tr, func(time.Duration, []byte) { res.audio++ })
			}
		}
		for r.Read() == nil {
		}
	}()
	if err := PublishMultitrack(ctx, "rtmp://"+ln.Addr().String()+"/live/multi", paths, Options{Unpaced: true}); err != nil {
		t.Fatal(err)
	}
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	if len(res.heights) != 3 || res.heights[0] != 360 || res.heights[1] != 240 || res.heights[2] != 144 || res.audio < 50 {
		t.Fatalf("tracks of heights %v, %d audio frames", res.heights, res.audio)
	}
	for i := range res.dts {
		if len(res.dts[i]) < 55 || len(res.dts[i]) != len(res.dts[0]) {
			t.Fatalf("track %d: %d frames, track 0 %d", i, len(res.dts[i]), len(res.dts[0]))
		}
		for j, d := range res.dts[i] {
			if d != res.dts[0][j] {
				t.Fatalf("track %d frame %d at %v, track 0's at %v", i, j, d, res.dts[0][j])
			}
		}
	}
}

func isParamsOnly(au [][]byte) bool {
	for _, n := range au {
		if typ := h264.NALUType(n[0] & 0x1f); typ != h264.NALUTypeSPS && typ != h264.NALUTypePPS {
			return false
		}
	}
	return true
}
