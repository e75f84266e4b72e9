package ingest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"

	"github.com/shopcast/shopcast/internal/testpub"
)

// fixture is 4s of H.264 high profile with B-frames and AAC-LC 48 kHz stereo
// (testdata/README.md).
const fixture = "../testdata/h264_aac.flv"

// nonParamNALUs splits an Annex-B access unit and drops parameter sets and
// access unit delimiters, which the two stacks place differently: gomedia's
// demuxer puts the SPS and PPS in front of every key frame, its muxer sends
// new ones only, and the server drops those that repeat Track.Codec.
func nonParamNALUs(t *testing.T, au [][]byte) [][]byte {
	t.Helper()
	var out [][]byte
	for _, n := range au {
		switch n[0] & 0x1f {
		case 7, 8, 9:
		default:
			out = append(out, n)
		}
	}
	return out
}

func annexB(t *testing.T, b []byte) [][]byte {
	t.Helper()
	var a h264.AnnexB
	if err := a.Unmarshal(b); err != nil {
		t.Fatal(err)
	}
	return a
}

func adtsAU(t *testing.T, b []byte) []byte {
	t.Helper()
	var pkts mpeg4audio.ADTSPackets
	if err := pkts.Unmarshal(b); err != nil || len(pkts) != 1 {
		t.Fatalf("ADTS: %v (%d packets)", err, len(pkts))
	}
	return pkts[0].AU
}

// checkFixture asserts that units carry every frame of the fixture, in
// order, with the fixture's PTS/DTS plus offset and the same payload.
func checkFixture(t *testing.T, units []*Unit, video, audio []testpub.Frame, offset time.Duration) {
	t.Helper()
	var gotVideo, gotAudio []*Unit
	for _, u := range units {
		switch u.Track.ID {
		case 1:
			gotVideo = append(gotVideo, u)
		case 2:
			gotAudio = append(gotAudio, u)
		default:
			t.Fatalf("unit of track %d", u.Track.ID)
		}
	}
	if len(gotVideo) != len(video) || len(gotAudio) != len(audio) {
		t.Fatalf("got %d video and %d audio units, the fixture has %d and %d",
			len(gotVideo), len(gotAudio), len(video), len(audio))
	}

	bframes := 0
	for i, f := range video {
		u := gotVideo[i]
		if u.PTS != f.PTS+offset || u.DTS != f.DTS+offset {
			t.Fatalf("video frame %d: PTS/DTS %v/%v, want %v/%v", i, u.PTS, u.DTS, f.PTS+offset, f.DTS+offset)
		}
		if u.PTS != u.DTS {
			bframes++
		}
		want := nonParamNALUs(t, annexB(t, f.Data))
		if got := nonParamNALUs(t, u.AU); !reflect.DeepEqual(got, want) {
			t.Fatalf("video frame %d: %d NALUs differ from the fixture's %d", i, len(got), len(want))
		}
	}
	if bframes == 0 {
		t.Fatal("no unit with PTS != DTS: B-frames lost")
	}

	for i, f := range audio {
		u := gotAudio[i]
		if u.PTS != f.PTS+offset || u.DTS != f.DTS+offset {
			t.Fatalf("audio frame %d: PTS/DTS %v/%v, want %v/%v", i, u.PTS, u.DTS, f.PTS+offset, f.DTS+offset)
		}
		if !bytes.Equal(u.Frame, adtsAU(t, f.Data)) {
			t.Fatalf("audio frame %d differs", i)
		}
	}
}

// TestRTMPPublishFixture publishes the fixture with gomedia's RTMP client
// and checks that the Sink receives every frame with the fixture's own
// timestamps. gortmplib passes RTMP timestamps through (DTS = message
// timestamp, PTS = DTS + composition offset, both in ms), so there is no
// offset between what the file says and what the Sink gets.
func TestRTMPPublishFixture(t *testing.T) {
	video, audio, err := testpub.ReadFLV(fixture)
	if err != nil {
		t.Fatal(err)
	}
	sps, pps := annexB(t, video[0].Data)[0], annexB(t, video[0].Data)[1]

	for _, tc := range []struct {
		name  string
		opts  testpub.Options
		loops int
	}{
		{"unpaced", testpub.Options{Unpaced: true}, 1},
		{"paced 8x", testpub.Options{Speed: 8}, 1},
		{"two loops", testpub.Options{Unpaced: true, Loops: 2}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := startTestServer(t, nil)
			if err := testpub.Publish(testContext(t, 20*time.Second), ts.url("/live/shop-1"), fixture, tc.opts); err != nil {
				t.Fatal(err)
			}
			p := ts.sink.waitPub(t, 0, 10*time.Second)
			ts.sink.waitClosed(t, p, 10*time.Second)

			ts.sink.snapshot(func() {
				if p.info.Name != "shop-1" || p.info.Proto != "rtmp" || p.info.Remote == "" {
					t.Fatalf("info = %+v", p.info)
				}
				if len(p.info.Tracks) != 2 {
					t.Fatalf("%d tracks", len(p.info.Tracks))
				}
				v, a := p.info.Tracks[0], p.info.Tracks[1]
				if v.ID != 1 || !reflect.DeepEqual(v.Codec, &codecs.H264{SPS: sps, PPS: pps}) {
					t.Fatalf("video track %+v %+v, want H264 with the fixture's SPS/PPS", v, v.Codec)
				}
				wantAAC := &codecs.MPEG4Audio{Config: decodedASC(t, mpeg4audio.AudioSpecificConfig{
					Type: mpeg4audio.ObjectTypeAACLC, SampleRate: 48000, ChannelConfig: 2,
				})}
				if a.ID != 2 || !reflect.DeepEqual(a.Codec, wantAAC) {
					t.Fatalf("audio track %+v %+v, want %+v", a, a.Codec, wantAAC)
				}

				n := len(p.units) / tc.loops
				checkFixture(t, p.units[:n], video, audio, 0)
				if tc.loops == 2 {
					offset := p.units[n].DTS - p.units[0].DTS
					if offset <= video[len(video)-1].DTS {
						t.Fatalf("second loop starts at +%v, inside the first", offset)
					}
					checkFixture(t, p.units[n:], video, audio, offset)
				}
				if p.closes != 1 {
					t.Fatalf("Close called %d times", p.closes)
				}
			})
			ts.logs.waitLine(t, time.Second, "publisher disconnected", "stream=shop-1", "proto=rtmp", "remote=")
		})
	}
}

// TestRTMPStreamKeys publishes with the key in the forms encoders send it.
func TestRTMPStreamKeys(t *testing.T) {
	ts := startTestServer(t, nil)

	for _, tc := range []struct {
		name    string
		path    string
		want    string // public name, "" when refused
		logLine string
	}{
		{"live/name", "/live/shop-1", "shop-1", ""},
		{"leading slash in key", "/live//shop-2", "shop-2", ""},
		{"query after key", "/live/shop-3?foo=bar", "shop-3", ""},
		{"bad app", "/app/shop-4", "", "application is not"},
		{"empty key", "/live/", "", "no stream key"},
		{"dot dot", "/live/..", "", "invalid stream name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := ts.sink.numPubs()
			err := testpub.Publish(testContext(t, 10*time.Second), ts.url(tc.path), fixture, testpub.Options{Unpaced: true})
			if tc.want == "" {
				if err == nil {
					t.Fatal("publish accepted")
				}
				ts.logs.waitLine(t, 5*time.Second, "publish refused", tc.logLine)
				if n := ts.sink.numPubs(); n != before {
					t.Fatalf("Sink got a publication")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			p := ts.sink.waitPub(t, before, 5*time.Second)
			if p.info.Name != tc.want {
				t.Fatalf("name %q, want %q", p.info.Name, tc.want)
			}
		})
	}
}

// TestRTMPAuth checks that, with authentication on, a known key publishes
// under its public name, an unknown key is refused before the Sink hears of
// it, and no key reaches the logs.
func TestRTMPAuth(t *testing.T) {
	const secret = "sk_live_5ecret9f8e7d"
	const wrong = "sk_live_wrong1234"
	ts := startTestServer(t, func(s *RTMPServer) {
		s.Auth = &Auth{Enabled: true, Keys: map[string]string{secret: "shop-1"}}
	})

	t.Run("unknown key", func(t *testing.T) {
		err := testpub.Publish(testContext(t, 10*time.Second), ts.url("/live/"+wrong), fixture, testpub.Options{Unpaced: true})
		if err == nil || !strings.Contains(err.Error(), "Unauthorized") {
			t.Fatalf("err = %v, want a NetStream.Publish.Unauthorized refusal", err)
		}
		ts.logs.waitLine(t, 5*time.Second, "publish refused", "unknown stream key", "proto=rtmp", "remote=")
		if n := ts.sink.numPubs(); n != 0 {
			t.Fatalf("Sink got %d publications", n)
		}
	})

	t.Run("known key", func(t *testing.T) {
		err := testpub.Publish(testContext(t, 10*time.Second), ts.url("/live/"+secret+"?from=obs"), fixture, testpub.Options{Unpaced: true})
		if err != nil {
			t.Fatal(err)
		}
		p := ts.sink.waitPub(t, 0, 5*time.Second)
		ts.sink.waitClosed(t, p, 5*time.Second)
		if p.info.Name != "shop-1" {
			t.Fatalf("name %q, want the public name", p.info.Name)
		}
		ts.logs.waitLine(t, 5*time.Second, "publisher disconnected", "stream=shop-1")
	})

	t.Run("key in the app position", func(t *testing.T) {
		// A "Server" field without /live: the key lands where the app is.
		err := testpub.Publish(testContext(t, 10*time.Second), ts.url("/"+secret+"/x"), fixture, testpub.Options{Unpaced: true})
		if err == nil {
			t.Fatal("publish accepted")
		}
		ts.logs.waitLine(t, 5*time.Second, "publish refused", "application is not")
	})

	logs := ts.logs.String()
	for _, key := range []string{secret, wrong} {
		if strings.Contains(logs, key) {
			t.Fatalf("key %q in the logs:\n%s", key, logs)
		}
	}
}

// TestRTMPRepublishReplaces reproduces an OBS reconnect: the old connection
// hangs (no data, socket open) when the same key publishes again. The new
// publisher must be accepted and the old connection closed.
func TestRTMPRepublishReplaces(t *testing.T) {
	ts := startTestServer(t, func(s *RTMPServer) {
		s.ReadTimeout = time.Minute // the replacement, not the timeout, must end the old one
	})

	oldCtx := testContext(t, 30*time.Second)
	oldDone := make(chan error, 1)
	go func() {
		oldDone <- testpub.Publish(oldCtx, ts.url("/live/shop-1"), fixture,
			testpub.Options{Unpaced: true, StallAfter: 2500 * time.Millisecond})
	}()
	old := ts.sink.waitPub(t, 0, 10*time.Second)
	waitUntil(t, &ts.sink.notifier, 10*time.Second, "units of the old publisher", func() bool {
		ts.sink.mu.Lock()
		defer ts.sink.mu.Unlock()
		return len(old.units) > 0
	}, nil)

	newDone := make(chan error, 1)
	go func() {
		newDone <- testpub.Publish(testContext(t, 30*time.Second), ts.url("/live/shop-1"), fixture, testpub.Options{Unpaced: true})
	}()

	// The old connection is closed by the server.
	select {
	case err := <-oldDone:
		if !errors.Is(err, testpub.ErrServerClosed) {
			t.Fatalf("old publisher ended with %v, want the server to close it", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("old connection still open")
	}

	cur := ts.sink.waitPub(t, 1, 10*time.Second)
	if err := <-newDone; err != nil {
		t.Fatalf("new publisher: %v", err)
	}
	ts.sink.waitClosed(t, cur, 10*time.Second)

	ts.sink.snapshot(func() {
		if old.closes != 1 || cur.closes != 1 {
			t.Fatalf("closes: old %d, new %d", old.closes, cur.closes)
		}
		if cur.info.Name != "shop-1" || cur.info.Remote == old.info.Remote {
			t.Fatalf("new publication %+v", cur.info)
		}
	})
	video, audio, err := testpub.ReadFLV(fixture)
	if err != nil {
		t.Fatal(err)
	}
	checkFixture(t, cur.units, video, audio, 0)

	ts.logs.waitLine(t, time.Second, "publisher replaced", "stream=shop-1",
		"remote="+cur.info.Remote, "old_remote="+old.info.Remote)
	ts.logs.waitLine(t, time.Second, "old connection closed", "remote="+old.info.Remote)
}

// rawHandshake performs a plain RTMP handshake (RTMP specification 5.2) by
// hand, for tests that then send malformed messages.
func rawHandshake(t *testing.T, nc net.Conn) {
	t.Helper()
	c0c1 := make([]byte, 1+1536)
	c0c1[0] = 3
	if _, err := nc.Write(c0c1); err != nil {
		t.Fatal(err)
	}
	s0s1s2 := make([]byte, 1+1536+1536)
	if _, err := io.ReadFull(nc, s0s1s2); err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Write(s0s1s2[1 : 1+1536]); err != nil { // C2 echoes S1
		t.Fatal(err)
	}
}

// rawChunk is a single type 0 chunk on chunk stream 3.
func rawChunk(typ byte, body []byte) []byte {
	b := []byte{3, 0, 0, 0, byte(len(body) >> 16), byte(len(body) >> 8), byte(len(body)), typ, 0, 0, 0, 0}
	return append(b, body...)
}

// waitServerClose reads until the server closes the connection (a FIN, or
// a reset when the server closed with our bytes unread).
func waitServerClose(t *testing.T, nc net.Conn) {
	t.Helper()
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.Copy(io.Discard, nc)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("server did not close the connection")
	}
}

// TestRTMPMalformedInput sends garbage and malformed commands while a good
// publisher is live: each bad connection is logged and closed, the server
// and the good publisher go on.
func TestRTMPMalformedInput(t *testing.T) {
	ts := startTestServer(t, nil)
	video, audio, err := testpub.ReadFLV(fixture)
	if err != nil {
		t.Fatal(err)
	}

	goodDone := make(chan error, 1)
	go func() {
		goodDone <- testpub.Publish(testContext(t, 30*time.Second), ts.url("/live/good"), fixture, testpub.Options{Speed: 2})
	}()
	good := ts.sink.waitPub(t, 0, 10*time.Second)

	dial := func(t *testing.T) net.Conn {
		nc, err := net.Dial("tcp", ts.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		return nc
	}

	amfString := func(s string) []byte {
		return append([]byte{0x02, byte(len(s) >> 8), byte(len(s))}, s...)
	}
	amfNumber := func(f float64) []byte {
		return binary.BigEndian.AppendUint64([]byte{0x00}, math.Float64bits(f))
	}

	for _, tc := range []struct {
		name    string
		send    func(t *testing.T, nc net.Conn)
		logLine string
	}{
		{"HTTP request", func(t *testing.T, nc net.Conn) {
			nc.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
		}, "invalid rtmp version"},
		{"random bytes after a valid C0", func(t *testing.T, nc net.Conn) {
			junk := make([]byte, 8000)
			for i := range junk {
				junk[i] = byte(i*7919 + i>>3)
			}
			junk[0] = 3
			nc.Write(junk)
			nc.(*net.TCPConn).CloseWrite()
		}, "connection closed before publishing"},
		{"connect with a truncated AMF string", func(t *testing.T, nc net.Conn) {
			rawHandshake(t, nc)
			body := append(amfString("connect"), amfNumber(1)...)
			body = append(body, 0x03, 0x00, 0x03, 'a', 'p', 'p', 0x02, 0xff, 0xff, 'l', 'i')
			nc.Write(rawChunk(20, body))
		}, "handshake or connect"},
		{"connect without arguments", func(t *testing.T, nc net.Conn) {
			rawHandshake(t, nc)
			nc.Write(rawChunk(20, append(amfString("connect"), amfNumber(1)...)))
		}, "invalid command payload"},
		{"connect of 1 MB", func(t *testing.T, nc net.Conn) {
			rawHandshake(t, nc)
			body := append(amfString("connect"), amfNumber(1)...)
			body = append(body, bytes.Repeat([]byte{0x0a, 0, 0, 0, 1}, 200_000)...)
			nc.Write(rawChunk(20, body))
		}, "exceeds the 65536-byte limit"},
		{"RTMPE handshake", func(t *testing.T, nc net.Conn) {
			nc.Write(append([]byte{6}, make([]byte, 1536)...))
		}, "encrypted RTMP (RTMPE) is not supported"},
		{"unknown message type", func(t *testing.T, nc net.Conn) {
			rawHandshake(t, nc)
			nc.Write(rawChunk(99, []byte{1, 2, 3}))
		}, "invalid message type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nc := dial(t)
			tc.send(t, nc)
			waitServerClose(t, nc)
			ts.logs.waitLine(t, 5*time.Second, "connection closed before publishing", "proto=rtmp",
				"remote="+nc.LocalAddr().String(), tc.logLine)
		})
	}

	if err := <-goodDone; err != nil {
		t.Fatalf("good publisher: %v", err)
	}
	ts.sink.waitClosed(t, good, 10*time.Second)
	checkFixture(t, good.units, video, audio, 0)
	if n := ts.sink.numPubs(); n != 1 {
		t.Fatalf("%d publications", n)
	}

	// The server still accepts publishers.
	if err := testpub.Publish(testContext(t, 10*time.Second), ts.url("/live/after"), fixture, testpub.Options{Unpaced: true}); err != nil {
		t.Fatal(err)
	}
	ts.sink.waitPub(t, 1, 5*time.Second)
}

// TestRTMPUnsupportedCodec publishes H.264 with MP3 audio, made by ffmpeg:
// the connection is closed and the log names the codec.
func TestRTMPUnsupportedCodec(t *testing.T) {
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Skip("ffmpeg not installed")
	}
	file := filepath.Join(t.TempDir(), "h264_mp3.flv")
	out, err := exec.Command(ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error",
		"-f", "lavfi", "-i", "testsrc2=size=160x90:rate=15",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100", "-t", "3",
		"-c:v", "libx264", "-preset", "ultrafast", "-g", "15", "-c:a", "libmp3lame", "-b:a", "32k",
		"-f", "flv", file).CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}

	ts := startTestServer(t, nil)
	err = testpub.Publish(testContext(t, 20*time.Second), ts.url("/live/mp3"), file,
		testpub.Options{Unpaced: true, StallAfter: 2500 * time.Millisecond})
	if !errors.Is(err, testpub.ErrServerClosed) {
		t.Fatalf("publisher ended with %v, want the server to close it", err)
	}
	ts.logs.waitLine(t, 5*time.Second, "publish refused", "stream=mp3", "unsupported codec: MPEG-1 Audio (MP3)")
	if n := ts.sink.numPubs(); n != 0 {
		t.Fatalf("Sink got %d publications", n)
	}
}

// TestRTMPDataMessages sends onCuePoint and onTextData among the frames,
// one of them during the first 2s that gortmplib reads ahead to find the
// tracks.
func TestRTMPDataMessages(t *testing.T) {
	ts := startTestServer(t, nil)
	sent := []testpub.DataMessage{
		{Time: 500 * time.Millisecond, Name: "onCuePoint", Values: []any{map[string]any{
			"name": "product", "type": "event", "time": 0.5,
			"parameters": testpub.ECMAArray{"sku": "sku-42", "price": 19.99},
		}}},
		{Time: 3 * time.Second, Name: "onTextData", Values: []any{
			map[string]any{"text": "Only 3 left!", "language": "en"}, true, nil, []any{1, "two"},
		}},
	}
	err := testpub.Publish(testContext(t, 20*time.Second), ts.url("/live/cues"), fixture,
		testpub.Options{Unpaced: true, Data: sent})
	if err != nil {
		t.Fatal(err)
	}
	p := ts.sink.waitPub(t, 0, 5*time.Second)
	ts.sink.waitClosed(t, p, 5*time.Second)

	want := []struct {
		name   string
		values []any
	}{
		{"onCuePoint", []any{map[string]any{
			"name": "product", "type": "event", "time": 0.5,
			"parameters": map[string]any{"sku": "sku-42", "price": 19.99},
		}}},
		{"onTextData", []any{
			map[string]any{"text": "Only 3 left!", "language": "en"}, true, nil, []any{1.0, "two"},
		}},
	}
	ts.sink.snapshot(func() {
		if len(p.data) != len(want) {
			t.Fatalf("got %d data messages, want %d (onMetaData must not be one)", len(p.data), len(want))
		}
		for i, w := range want {
			d := p.data[i]
			if d.Name != w.name || !reflect.DeepEqual(d.Values, w.values) {
				t.Fatalf("data %d = %s %#v, want %s %#v", i, d.Name, d.Values, w.name, w.values)
			}
			// The message timestamp is lost in gortmplib: it gets the DTS
			// of the media message before it, within a frame.
			if d.Time > sent[i].Time || d.Time < sent[i].Time-50*time.Millisecond {
				t.Fatalf("data %d at %v, sent at %v", i, d.Time, sent[i].Time)
			}
		}
	})
}

// TestRTMPReadTimeout checks that a stalled publisher, and a connection that
// never says anything, are dropped after ReadTimeout.
func TestRTMPReadTimeout(t *testing.T) {
	ts := startTestServer(t, func(s *RTMPServer) { s.ReadTimeout = 300 * time.Millisecond })

	t.Run("stalled publisher", func(t *testing.T) {
		err := testpub.Publish(testContext(t, 20*time.Second), ts.url("/live/stall"), fixture,
			testpub.Options{Unpaced: true, StallAfter: 2500 * time.Millisecond})
		if !errors.Is(err, testpub.ErrServerClosed) {
			t.Fatalf("publisher ended with %v, want the server to close it", err)
		}
		p := ts.sink.waitPub(t, 0, 5*time.Second)
		ts.sink.waitClosed(t, p, 5*time.Second)
		ts.logs.waitLine(t, 5*time.Second, "connection closed: no data", "stream=stall", "timeout=300ms")
	})

	t.Run("silent connection", func(t *testing.T) {
		nc, err := net.Dial("tcp", ts.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		waitServerClose(t, nc)
		ts.logs.waitLine(t, 5*time.Second, "connection closed: no data", "remote="+nc.LocalAddr().String())
	})
}

// TestRTMPMaxConns checks that connections beyond MaxConns are closed at
// once and logged.
func TestRTMPMaxConns(t *testing.T) {
	ts := startTestServer(t, func(s *RTMPServer) { s.MaxConns = 1 })

	first, err := net.Dial("tcp", ts.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	// The first connection is registered once the server answers its C0+C1.
	rawHandshake(t, first)

	second, err := net.Dial("tcp", ts.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	waitServerClose(t, second)
	ts.logs.waitLine(t, 5*time.Second, "too many connections", "remote="+second.LocalAddr().String())
}

// TestRTMPCloseEndsPublications checks that Close ends live publications
// and returns.
func TestRTMPCloseEndsPublications(t *testing.T) {
	ts := startTestServer(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- testpub.Publish(ctx, ts.url("/live/shop-1"), fixture, testpub.Options{Unpaced: true, StallAfter: 2500 * time.Millisecond})
	}()
	p := ts.sink.waitPub(t, 0, 10*time.Second)
	ts.Close()
	ts.sink.snapshot(func() {
		if p.closes != 1 {
			t.Fatalf("Close called %d times after server Close", p.closes)
		}
	})
	if err := <-done; !errors.Is(err, testpub.ErrServerClosed) {
		t.Fatalf("publisher ended with %v", err)
	}
	again := &RTMPServer{Address: ts.Addr().String(), Sink: ts.sink, Logger: ts.Logger}
	if err := again.Start(); err != nil {
		t.Fatalf("port not released: %v", err)
	}
	again.Close()
}

// TestRTMPMalformedMedia sends a broken message in the middle of a live
// publication: that publisher is closed with the reason logged, and its
// publication closed once.
func TestRTMPMalformedMedia(t *testing.T) {
	video, audio, err := testpub.ReadFLV(fixture)
	if err != nil {
		t.Fatal(err)
	}
	frames := append(append([]testpub.Frame(nil), video...), audio...)
	sort.SliceStable(frames, func(i, j int) bool { return frames[i].DTS < frames[j].DTS })

	ts := startTestServer(t, nil)
	for i, tc := range []struct {
		name    string
		typ     byte
		body    []byte
		logLine string
	}{
		{"NAL unit length past the message", 9, []byte{0x27, 1, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff, 0x41}, "unable to decode AVCC"},
		{"unknown video codec", 9, []byte{0x23, 1, 0, 0, 0, 0}, "unsupported video codec"},
		{"empty audio message", 8, nil, "not enough bytes"},
		// gortmplib's AMF0 decoder recurses per nesting level: decoding
		// this 10 MB message would overflow the stack and kill the process.
		{"data message nested 2 million deep", 18, append(bytes.Repeat([]byte{0x0a, 0, 0, 0, 1}, 2_000_000), 0x05),
			"AMF message (type 18) of 10000001 bytes exceeds the 65536-byte limit"},
		// Enhanced RTMP video metadata is AMF0 too, inside a video message.
		{"video metadata nested 2 million deep", 9, append([]byte{0x84, 'a', 'v', '0', '1'},
			append(bytes.Repeat([]byte{0x0a, 0, 0, 0, 1}, 2_000_000), 0x05)...),
			"video metadata message of 10000006 bytes exceeds the 65536-byte limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := testpub.Dial(testContext(t, 10*time.Second), ts.url("/live/m"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			for _, f := range frames {
				if f.DTS > 2500*time.Millisecond {
					break
				}
				if err := c.WriteFrame(f); err != nil {
					t.Fatal(err)
				}
			}
			p := ts.sink.waitPub(t, i, 5*time.Second)
			// The server may close the connection while a large message is
			// still being written.
			_ = c.WriteMessage(tc.typ, 2600*time.Millisecond, tc.body)
			select {
			case <-c.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("connection still open")
			}
			ts.logs.waitLine(t, 5*time.Second, "publisher connection closed", "stream=m", tc.logLine)
			ts.sink.waitClosed(t, p, 5*time.Second)
			ts.sink.snapshot(func() {
				if p.closes != 1 {
					t.Fatalf("Close called %d times", p.closes)
				}
			})
		})
	}
}
