package ingest

import (
	"bytes"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortmplib/pkg/amf0"
)

// The fuzz targets here start from a valid session so that the fuzzer
// spends its time on one layer: FuzzRTMPChunkStream on the chunk stream
// after the handshake, FuzzRTMPMediaTag on the FLV tag bodies of audio and
// video messages. FuzzRTMPConn (rtmp_fuzz_test.go) mutates whole sessions.

// rtmpMessage is one message in a single chunk (type 0 header), for chunk
// size 4096.
func rtmpMessage(csid, typ byte, ts uint32, streamID byte, body []byte) []byte {
	n := len(body)
	h := []byte{csid, byte(ts >> 16), byte(ts >> 8), byte(ts), byte(n >> 16), byte(n >> 8), byte(n), typ, streamID, 0, 0, 0}
	return append(h, body...)
}

// rtmpPublishPrefix is a client's side of a session up to and including
// the AVC and AAC sequence headers, without the handshake.
func rtmpPublishPrefix(t testing.TB) []byte {
	cmd := func(csid, streamID byte, values ...any) []byte {
		body, err := amf0.Data(values).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return rtmpMessage(csid, 20, 0, streamID, body)
	}
	var b bytes.Buffer
	b.Write(rtmpMessage(2, 1, 0, 0, []byte{0, 0, 0x10, 0})) // Set Chunk Size 4096
	b.Write(cmd(3, 0, "connect", 1.0, amf0.Object{{Key: "app", Value: "live"}, {Key: "tcUrl", Value: "rtmp://h/live"}}))
	b.Write(cmd(3, 0, "createStream", 2.0, nil))
	b.Write(cmd(8, 1, "publish", 3.0, nil, "shop", "live"))
	meta, _ := amf0.Data{"@setDataFrame", "onMetaData", amf0.Object{
		{Key: "videocodecid", Value: 7.0}, {Key: "audiocodecid", Value: 10.0},
	}}.Marshal()
	b.Write(rtmpMessage(4, 18, 0, 1, meta))
	seq := append([]byte{0x17, 0, 0, 0, 0, 1, 0x42, 0xc0, 0x28, 0xff, 0xe1, 0, byte(len(testH264SPS))}, testH264SPS...)
	seq = append(append(seq, 1, 0, byte(len(testH264PPS))), testH264PPS...)
	b.Write(rtmpMessage(6, 9, 0, 1, seq))
	b.Write(rtmpMessage(4, 8, 0, 1, []byte{0xaf, 0, 0x11, 0x90})) // AAC LC 48 kHz stereo
	return b.Bytes()
}

// runRTMPInput runs one server connection over in and fails on a panic
// (serve recovers and logs it) or a connection that does not end.
func runRTMPInput(t *testing.T, in []byte) {
	var logs bytes.Buffer
	c := newRTMPConn(memServer(&logs, &fakeSink{}), &memConn{r: bytes.NewReader(in)})
	go c.run()
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
		buf := make([]byte, 1<<20)
		t.Fatalf("connection still running after 5s on %q:\n%s", in, buf[:runtime.Stack(buf, true)])
	}
	if strings.Contains(logs.String(), "panic") {
		t.Fatalf("panic on %q:\n%s", in, logs.String())
	}
}

var rtmpHandshake = append([]byte{3}, make([]byte, 1536*2)...) // C0, C1, C2

// FuzzRTMPChunkStream feeds arbitrary chunk-stream bytes after a valid
// handshake: chunk headers of every type, extended timestamps, chunk size
// changes, aborts, interleaved chunk streams.
func FuzzRTMPChunkStream(f *testing.F) {
	prefix := rtmpPublishPrefix(f)
	f.Add(prefix)
	f.Add(rtmpSessionSeed(f)[len(rtmpHandshake):])
	// A type 0 header with an extended timestamp, then type 3 continuations
	// at the default chunk size of 128.
	long := bytes.Repeat([]byte{0x17, 1}, 200)
	ext := []byte{6, 0xff, 0xff, 0xff, 0, 1, 0x90, 9, 1, 0, 0, 0, 0x01, 0x00, 0x00, 0x00}
	ext = append(ext, long[:128]...)
	ext = append(ext, 0xc6, 0x01, 0x00, 0x00, 0x00)
	ext = append(ext, long[128:256]...)
	f.Add(ext)
	// Set Chunk Size 1, then 0x7fffffff; Abort Message on an open stream.
	f.Add([]byte{2, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Add([]byte{2, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff})
	f.Add(append(append([]byte{}, prefix...), 2, 0, 0, 0, 0, 0, 4, 2, 0, 0, 0, 0, 0, 0, 0, 6))
	// 2- and 3-byte basic headers (chunk stream ids 64+ and 320+).
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 1, 8, 1, 0, 0, 0, 0xaf})
	f.Add([]byte{1, 0xff, 0xff, 0, 0, 0, 0, 0, 1, 9, 1, 0, 0, 0, 0x17})
	f.Fuzz(func(t *testing.T, in []byte) {
		runRTMPInput(t, append(append([]byte{}, rtmpHandshake...), in...))
	})
}

// FuzzRTMPMediaTag sends one FLV tag body as a video (typ odd) or audio
// (typ even) message in a valid publication, during track probing and again
// once the publication runs: sequence headers, Enhanced RTMP FourCC
// packets, composition offsets, empty and truncated tags.
func FuzzRTMPMediaTag(f *testing.F) {
	prefix := rtmpPublishPrefix(f)
	for _, s := range []struct {
		typ  byte
		body []byte
	}{
		{9, []byte{0x17, 1, 0, 0, 0, 0, 0, 0, 3, 0x65, 0x88, 0x84}},    // AVC key frame
		{9, []byte{0x27, 1, 0xff, 0xff, 0xf0, 0, 0, 0, 2, 0x41, 0x9a}}, // negative composition time
		{9, []byte{0x17, 0}}, // truncated sequence header
		{9, []byte{0x17, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x65}},            // NAL length past the end
		{9, []byte{0x90, 'h', 'v', 'c', '1', 1, 0, 0, 0, 0, 0, 0, 2, 0x26}},    // Enhanced RTMP HEVC frame
		{9, []byte{0x80, 'a', 'v', '0', '1', 0x0a, 0x0b, 0, 0, 0}},             // Enhanced RTMP AV1 start
		{9, []byte{0x90 | 5, 'v', 'p', '0', '9'}},                              // Enhanced RTMP multitrack/unknown packet type
		{8, []byte{0xaf, 1, 0x21, 0x10, 0x04}},                                 // AAC frame
		{8, []byte{0xaf, 0, 0xff}},                                             // AAC sequence header of one byte
		{8, []byte{0x2f, 0xff, 0xfb, 0x90, 0x64}},                              // MP3
		{8, []byte{0x9f, 'O', 'p', 'u', 's', 0, 'O', 'p', 'u', 's', 'H', 'e'}}, // Enhanced audio Opus
		{8, nil},
	} {
		f.Add(s.typ, s.body)
	}
	frame := []byte{0x17, 1, 0, 0, 0, 0, 0, 0, 3, 0x65, 0x88, 0x84}
	f.Fuzz(func(t *testing.T, typ byte, body []byte) {
		if len(body) > 1<<16 {
			return // one chunk of 4096 is the builder's limit anyway: keep it small
		}
		msgType := byte(8)
		if typ&1 == 1 {
			msgType = 9
		}
		csid := byte(4)
		if msgType == 9 {
			csid = 6
		}
		var in bytes.Buffer
		in.Write(rtmpHandshake)
		in.Write(prefix)
		in.Write(rtmpMessageChunked(csid, msgType, 0, 1, body))
		for ms := uint32(0); ms <= 2500; ms += 500 {
			in.Write(rtmpMessage(6, 9, ms, 1, frame))
		}
		in.Write(rtmpMessageChunked(csid, msgType, 3000, 1, body))
		runRTMPInput(t, in.Bytes())
	})
}

// rtmpMessageChunked is rtmpMessage split into 4096-byte chunks (type 3
// continuations), for bodies of any length.
func rtmpMessageChunked(csid, typ byte, ts uint32, streamID byte, body []byte) []byte {
	const size = 4096
	if len(body) <= size {
		return rtmpMessage(csid, typ, ts, streamID, body)
	}
	n := len(body)
	out := []byte{csid, byte(ts >> 16), byte(ts >> 8), byte(ts), byte(n >> 16), byte(n >> 8), byte(n), typ, streamID, 0, 0, 0}
	out = append(out, body[:size]...)
	for rest := body[size:]; len(rest) > 0; {
		k := min(size, len(rest))
		out = append(out, 0xc0|csid)
		out = append(out, rest[:k]...)
		rest = rest[k:]
	}
	return out
}

// TestRTMPPublishPrefixPublishes checks that the fuzz targets' prefix is a
// publication the server accepts, so that mutations reach the media path.
func TestRTMPPublishPrefixPublishes(t *testing.T) {
	var logs bytes.Buffer
	sink := &fakeSink{}
	var in bytes.Buffer
	in.Write(rtmpHandshake)
	in.Write(rtmpPublishPrefix(t))
	frame := []byte{0x17, 1, 0, 0, 0, 0, 0, 0, 3, 0x65, 0x88, 0x84}
	for ms := uint32(0); ms <= 2500; ms += 500 {
		in.Write(rtmpMessage(6, 9, ms, 1, frame))
	}
	newRTMPConn(memServer(&logs, sink), &memConn{r: bytes.NewReader(in.Bytes())}).run()
	if sink.numPubs() != 1 {
		t.Fatalf("prefix did not publish:\n%s", logs.String())
	}
	if n := len(sink.pub(0).units); n < 5 {
		t.Fatalf("%d units published:\n%s", n, logs.String())
	}
}
