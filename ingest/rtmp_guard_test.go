package ingest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/bluenviron/gortmplib/pkg/bytecounter"
	"github.com/bluenviron/gortmplib/pkg/rawmessage"
)

// plainHandshake is C0, C1 and C2 of a plain RTMP handshake.
func plainHandshake() []byte {
	b := make([]byte, guardHandshake)
	b[0] = 3
	return b
}

// chunked writes one message as chunks of chunkSize on csid, with a type 0
// header (type 3 after), as an encoder does.
func chunked(csid byte, typ byte, ts uint32, body []byte, chunkSize int) []byte {
	ext := ts >= 0xffffff
	hts := min(ts, 0xffffff)
	b := []byte{csid, byte(hts >> 16), byte(hts >> 8), byte(hts), byte(len(body) >> 16), byte(len(body) >> 8), byte(len(body)), typ, 1, 0, 0, 0}
	if ext {
		b = binary.BigEndian.AppendUint32(b, ts)
	}
	for {
		n := min(len(body), chunkSize)
		b = append(b, body[:n]...)
		body = body[n:]
		if len(body) == 0 {
			return b
		}
		b = append(b, 0xc0|csid)
		if ext {
			b = binary.BigEndian.AppendUint32(b, ts)
		}
	}
}

func setChunkSize(v uint32) []byte {
	return chunked(2, 1, 0, binary.BigEndian.AppendUint32(nil, v), 128)
}

func TestRTMPGuard(t *testing.T) {
	big := bytes.Repeat([]byte{0x0a, 0, 0, 0, 1}, 20000) // 100 KB of nested strict arrays
	video := make([]byte, 1<<20)

	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

	for _, tc := range []struct {
		name    string
		in      []byte
		wantErr string
	}{
		{"small command", cat(plainHandshake(), chunked(3, 20, 0, make([]byte, 300), 128)), ""},
		{"large video at chunk size 128", cat(plainHandshake(), chunked(6, 9, 0, video, 128)), ""},
		{"large video at chunk size 4096, extended timestamp", cat(plainHandshake(), setChunkSize(4096),
			chunked(6, 9, 0x1000000, video, 4096), chunked(4, 18, 0x1000001, make([]byte, 100), 4096)), ""},
		{"large data message", cat(plainHandshake(), chunked(4, 18, 0, big, 128)), "AMF message (type 18) of 100000 bytes exceeds the 65536-byte limit"},
		{"large connect", cat(plainHandshake(), chunked(3, 20, 0, big, 128)), "exceeds the 65536-byte limit"},
		{"large data message after media and a chunk size change", cat(plainHandshake(), setChunkSize(60000),
			chunked(6, 9, 0, video, 60000), chunked(4, 18, 40, big, 60000)), "exceeds"},
		{"large data message announced by a type 1 header", cat(plainHandshake(), chunked(4, 18, 0, make([]byte, 10), 128),
			[]byte{0x44, 0, 0, 40, 0x01, 0x86, 0xa0, 18}), "exceeds"},
		{"RTMPE", cat([]byte{6}, make([]byte, 3000)), errRTMPE.Error()},
		{"large Enhanced RTMP video metadata", cat(plainHandshake(), setChunkSize(4096),
			chunked(6, 9, 0, append([]byte{0x84, 'a', 'v', '0', '1'}, big...), 4096)), "video metadata message of 100005 bytes exceeds"},
		{"large Enhanced RTMP coded frames", cat(plainHandshake(), setChunkSize(4096),
			chunked(6, 9, 0, append([]byte{0x81, 'a', 'v', '0', '1', 0, 0, 0}, big...), 4096)), ""},
		{"chunk size beyond 10 MiB", cat(plainHandshake(), setChunkSize(20<<20)), "exceeds maximum"},
		{"type 3 chunk first", cat(plainHandshake(), []byte{0xc3}), "type 3 chunk without previous chunk"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Every split of the input into two reads gives the same answer
			// (checked on a few cut points, and byte by byte).
			cuts := []int{1, 2, 3, guardHandshake, guardHandshake + 1, guardHandshake + 5, guardHandshake + 13, len(tc.in) / 2, len(tc.in) - 1}
			for _, cut := range cuts {
				if cut <= 0 || cut >= len(tc.in) {
					continue
				}
				g := newRTMPGuard(64 * 1024)
				err := g.feed(tc.in[:cut])
				if err == nil {
					err = g.feed(tc.in[cut:])
				}
				checkGuardErr(t, err, tc.wantErr)
			}
			if len(tc.in) < 200000 {
				g := newRTMPGuard(64 * 1024)
				var err error
				for i := 0; i < len(tc.in) && err == nil; i++ {
					err = g.feed(tc.in[i : i+1])
				}
				checkGuardErr(t, err, tc.wantErr)
			}
		})
	}
}

func checkGuardErr(t *testing.T, err error, want string) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatalf("error %v", err)
		}
		return
	}
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v, want %q", err, want)
	}
}

// guardedReader hands bytes to gortmplib one at a time, after the guard
// (when set) has seen them.
type guardedReader struct {
	in    []byte
	guard *rtmpGuard
}

func (r *guardedReader) Read(p []byte) (int, error) {
	if len(r.in) == 0 {
		return 0, io.EOF
	}
	if r.guard != nil {
		if err := r.guard.feed(r.in[:1]); err != nil {
			return 0, err
		}
	}
	p[0] = r.in[0]
	r.in = r.in[1:]
	return 1, nil
}

// readRawMessages reads messages as gortmplib's message.Reader frames them
// (its rawmessage.Reader, plus Set Chunk Size and Abort Message), without
// decoding their bodies.
func readRawMessages(r io.Reader) (msgs []*rawmessage.Message, err error) {
	bcr := bytecounter.NewReader(r)
	mr := rawmessage.NewReader(bcr, bcr, func(uint32) error { return nil })
	for {
		m, err := mr.Read()
		if err != nil {
			return msgs, err
		}
		switch m.Type {
		case 1:
			if len(m.Body) != 4 {
				return msgs, errors.New("invalid body size")
			}
			if err := mr.SetChunkSize(binary.BigEndian.Uint32(m.Body)); err != nil {
				return msgs, err
			}
		case 2:
			if len(m.Body) != 4 {
				return msgs, errors.New("invalid body size")
			}
			mr.AbortChunkStream(binary.BigEndian.Uint32(m.Body))
		}
		// message.Reader returns a message once its effect on framing
		// succeeded.
		msgs = append(msgs, m)
	}
}

// FuzzRTMPGuard checks rtmpGuard against gortmplib's own chunk reader: the
// guard never stops a stream that gortmplib reads (without the AMF limit,
// both read the same messages), and with the limit no AMF message over it
// reaches gortmplib.
func FuzzRTMPGuard(f *testing.F) {
	f.Add(chunked(3, 20, 0, make([]byte, 300), 128))
	f.Add(bytes.Join([][]byte{setChunkSize(64), chunked(6, 9, 0x1000000, make([]byte, 300), 64),
		chunked(4, 18, 5, make([]byte, 100), 64)}, nil))
	f.Add(bytes.Join([][]byte{chunked(4, 18, 0, make([]byte, 300), 128)[:140],
		chunked(2, 2, 0, []byte{0, 0, 0, 4}, 128), []byte{0xc4}}, nil))
	f.Add(bytes.Join([][]byte{setChunkSize(0), chunked(5, 9, 3, []byte{1, 2}, 1), {0xc5, 0xc5}}, nil))
	f.Add(bytes.Join([][]byte{setChunkSize(16), chunked(6, 9, 0, append([]byte{0x84, 'a', 'v', '0', '1'}, make([]byte, 100)...), 16)}, nil))

	f.Fuzz(func(t *testing.T, in []byte) {
		want, _ := readRawMessages(&guardedReader{in: in})

		g := newRTMPGuard(guardMaxBodySize)
		if err := g.feed(plainHandshake()); err != nil {
			t.Fatal(err)
		}
		got, err := readRawMessages(&guardedReader{in: in, guard: g})
		if len(got) != len(want) {
			t.Fatalf("guard stopped after %d of %d messages: %v", len(got), len(want), err)
		}

		const limit = 64
		g = newRTMPGuard(limit)
		if err := g.feed(plainHandshake()); err != nil {
			t.Fatal(err)
		}
		got, _ = readRawMessages(&guardedReader{in: in, guard: g})
		for _, m := range got {
			if (isAMFMessage(m.Type) || m.Type == 9 && len(m.Body) > 0 && isVideoMetadata(m.Body[0])) && len(m.Body) > limit {
				t.Fatalf("AMF message of %d bytes (type %d) got through", len(m.Body), m.Type)
			}
		}
	})
}
