package testpub

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/bluenviron/gortmplib/pkg/amf0"
	"github.com/bluenviron/gortmplib/pkg/bytecounter"
	"github.com/bluenviron/gortmplib/pkg/rawmessage"

	"github.com/shopcast/shopcast/ingest"
)

const fixture = "../../testdata/h264_aac.flv"

func TestReadFLV(t *testing.T) {
	video, audio, err := ReadFLV(fixture)
	if err != nil {
		t.Fatal(err)
	}
	// 4s at 30 fps; AAC at 48 kHz is 1024 samples a frame.
	if len(video) != 120 || len(audio) < 185 {
		t.Fatalf("%d video and %d audio frames", len(video), len(audio))
	}
	bframes := 0
	for i, f := range video {
		if f.Codec != CodecH264 || !bytes.HasPrefix(f.Data, []byte{0, 0, 0, 1}) {
			t.Fatalf("video frame %d: %s %x", i, f.Codec, f.Data[:min(8, len(f.Data))])
		}
		if f.PTS != f.DTS {
			bframes++
		}
		if i > 0 && f.DTS <= video[i-1].DTS {
			t.Fatalf("video DTS not increasing at %d", i)
		}
	}
	if bframes == 0 {
		t.Fatal("no B-frames in the fixture")
	}
	// The first frame is a key frame with the SPS and PPS in front.
	if video[0].Data[4]&0x1f != 7 {
		t.Fatalf("first frame starts with NALU type %d", video[0].Data[4]&0x1f)
	}
	for i, f := range audio {
		if f.Codec != CodecAAC || f.PTS != f.DTS || f.Data[0] != 0xff || f.Data[1]&0xf0 != 0xf0 {
			t.Fatalf("audio frame %d: %s %v/%v %x", i, f.Codec, f.PTS, f.DTS, f.Data[:2])
		}
	}
}

func TestReadFLVMalformed(t *testing.T) {
	good, err := os.ReadFile(fixture)
	if err != nil {
		t.Fatal(err)
	}
	corrupt := append([]byte(nil), good...)
	// The first video tag after the header and the script tag: make its
	// first NAL unit length point past the end of the tag.
	for i := 13; i+11 < len(corrupt); {
		size := int(corrupt[i+1])<<16 | int(corrupt[i+2])<<8 | int(corrupt[i+3])
		if corrupt[i] == 9 && corrupt[i+12] == 1 { // video, AVC NALU packet
			copy(corrupt[i+16:], []byte{0x7f, 0xff, 0xff, 0xff})
			break
		}
		i += 11 + size + 4
	}

	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"not FLV", []byte("RIFF0000WAVEfmt ")},
		{"empty", nil},
		{"header only", good[:13]},
		{"NAL unit length past the tag", corrupt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "in.flv")
			if err := os.WriteFile(path, tc.data, 0o644); err != nil {
				t.Fatal(err)
			}
			if _, _, err := ReadFLV(path); err == nil {
				t.Fatal("no error")
			}
		})
	}
}

func TestEncodeAMF0(t *testing.T) {
	// Decoded by gortmplib's AMF0 decoder, an implementation of its own.
	b, err := encodeAMF0("onCuePoint", map[string]any{
		"name": "product", "time": 1.5, "n": 3, "ok": true, "none": nil,
		"list":   []any{"a", 2.0},
		"params": ECMAArray{"sku": "sku-42"},
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := amf0.Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	want := amf0.Data{"onCuePoint", amf0.Object{
		{Key: "list", Value: amf0.StrictArray{"a", 2.0}},
		{Key: "n", Value: 3.0},
		{Key: "name", Value: "product"},
		{Key: "none", Value: nil},
		{Key: "ok", Value: true},
		{Key: "params", Value: amf0.ECMAArray{{Key: "sku", Value: "sku-42"}}},
		{Key: "time", Value: 1.5},
	}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %#v\nwant %#v", got, want)
	}

	// gortmplib cannot decode long strings (marker 0x0c): check the bytes.
	long := string(bytes.Repeat([]byte{'x'}, 70000))
	b, err = encodeAMF0(long)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b[:5], []byte{0x0c, 0, 1, 0x11, 0x70}) || string(b[5:]) != long {
		t.Fatalf("long string encoded as %x...", b[:5])
	}

	if _, err := encodeAMF0(struct{}{}); err == nil {
		t.Fatal("encoded a struct")
	}
}

func TestChunkMessage(t *testing.T) {
	body := make([]byte, 10000)
	for i := range body {
		body[i] = byte(i)
	}
	for _, ts := range []uint32{0, 1500, 0xffffff, math.MaxUint32 >> 1} {
		in := chunkMessage(rawChunkStreamID, msgTypeDataAMF0, publishStreamID, ts, body, 4096)

		// Read back with gortmplib's chunk reader.
		br := bytecounter.NewReader(bytes.NewReader(in))
		r := rawmessage.NewReader(br, br, func(uint32) error { return nil })
		if err := r.SetChunkSize(4096); err != nil {
			t.Fatal(err)
		}
		msg, err := r.Read()
		if err != nil {
			t.Fatalf("ts %d: %v", ts, err)
		}
		if msg.ChunkStreamID != rawChunkStreamID || msg.Type != msgTypeDataAMF0 ||
			msg.MessageStreamID != 0x1000000 || // gortmplib reads the little-endian field big-endian
			msg.Timestamp != time.Duration(ts)*time.Millisecond || !bytes.Equal(msg.Body, body) {
			t.Fatalf("ts %d: got chunk stream %d type %d stream %#x ts %v, %d bytes",
				ts, msg.ChunkStreamID, msg.Type, msg.MessageStreamID, msg.Timestamp, len(msg.Body))
		}
	}
}

type nopSink struct{}

func (nopSink) Publish(ingest.PublishInfo) (ingest.Publication, error) { return nopPub{}, nil }

type nopPub struct{}

func (nopPub) WriteUnit(*ingest.Unit) error { return nil }
func (nopPub) WriteData(*ingest.Data)       {}
func (nopPub) Close()                       {}

func TestPublishEnds(t *testing.T) {
	s := &ingest.RTMPServer{Address: "127.0.0.1:0", Sink: nopSink{}, Logger: discardLogger()}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	url := "rtmp://" + s.Addr().String() + "/live/x"

	t.Run("context cancelled while paced", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := Publish(ctx, url, fixture, Options{})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("returned after %v", d)
		}
	})

	t.Run("server that never answers", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			c, err := ln.Accept()
			if err == nil {
				defer c.Close()
				io.Copy(io.Discard, c) // read, never answer, until the client gives up
			}
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		_, err = Dial(ctx, "rtmp://"+ln.Addr().String()+"/live/x")
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("bad URLs", func(t *testing.T) {
		for _, u := range []string{"http://h/live/x", "rtmp://" + s.Addr().String(), "::"} {
			if _, err := Dial(context.Background(), u); err == nil {
				t.Fatalf("Dial(%q) succeeded", u)
			}
		}
	})
}

func discardLogger() *slog.Logger {
	return slog.New(slog.DiscardHandler)
}

// FuzzParseFLV checks that malformed FLV gives an error, never a panic
// (gomedia's panics are recovered).
func FuzzParseFLV(f *testing.F) {
	good, err := os.ReadFile(fixture)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good[:4096])
	f.Add([]byte("FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, in []byte) {
		frames, err := parseFLV(in)
		if err == nil && len(frames) == 0 {
			t.Fatal("no frames and no error")
		}
	})
}
