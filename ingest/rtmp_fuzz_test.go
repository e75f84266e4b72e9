package ingest

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortmplib/pkg/amf0"
)

// memConn is a net.Conn that reads a fixed input, then EOF, and discards
// what is written.
type memConn struct {
	r io.Reader
}

func (c *memConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c *memConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *memConn) Close() error                     { return nil }
func (c *memConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *memConn) RemoteAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }
func (c *memConn) SetDeadline(time.Time) error      { return nil }
func (c *memConn) SetReadDeadline(time.Time) error  { return nil }
func (c *memConn) SetWriteDeadline(time.Time) error { return nil }

// memServer is a server configured as Start would, for connections over
// memConn.
func memServer(logs io.Writer, sink Sink) *RTMPServer {
	return &RTMPServer{
		log:         slog.New(slog.NewTextHandler(logs, nil)),
		auth:        &Auth{},
		registry:    &Registry{},
		readTimeout: time.Second,
		maxConns:    1,
		maxAMF:      64 * 1024,
		Sink:        sink,
	}
}

// rtmpSessionSeed is a client's side of a publish session up to the first
// media messages: handshake, connect, createStream, publish,
// @setDataFrame, an AVC sequence header and a frame.
func rtmpSessionSeed(t testing.TB) []byte {
	cmd := func(csid byte, streamID byte, values ...any) []byte {
		body, err := amf0.Data(values).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return append([]byte{csid, 0, 0, 0, byte(len(body) >> 16), byte(len(body) >> 8), byte(len(body)), 20, streamID, 0, 0, 0}, body...)
	}
	var b bytes.Buffer
	b.WriteByte(3)
	b.Write(make([]byte, 1536*2)) // C1, C2
	// Set chunk size 4096 so that each message below is one chunk.
	b.Write([]byte{2, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0, 0, 0, 0x10, 0})
	b.Write(cmd(3, 0, "connect", 1.0, amf0.Object{{Key: "app", Value: "live"}, {Key: "tcUrl", Value: "rtmp://h/live"}}))
	b.Write(cmd(3, 0, "createStream", 2.0, nil))
	b.Write(cmd(8, 1, "publish", 3.0, nil, "shop", "live"))
	data, _ := amf0.Data{"@setDataFrame", "onMetaData", amf0.Object{{Key: "width", Value: 640.0}}}.Marshal()
	b.Write(append([]byte{4, 0, 0, 0, 0, byte(len(data) >> 8), byte(len(data)), 18, 1, 0, 0, 0}, data...))
	seq := append([]byte{0x17, 0, 0, 0, 0, 1, 0x42, 0xc0, 0x28, 0xff, 0xe1, 0, byte(len(testH264SPS))}, testH264SPS...)
	seq = append(append(seq, 1, 0, byte(len(testH264PPS))), testH264PPS...)
	b.Write(append([]byte{6, 0, 0, 0, 0, 0, byte(len(seq)), 9, 1, 0, 0, 0}, seq...))
	// Frames until 2.5s: gortmplib reads 2s of media to find the tracks.
	frame := []byte{0x17, 1, 0, 0, 0, 0, 0, 0, 3, 0x65, 0x88, 0x84}
	for ms := 0; ms <= 2500; ms += 500 {
		b.Write(append([]byte{6, byte(ms >> 16), byte(ms >> 8), byte(ms), 0, 0, byte(len(frame)), 9, 1, 0, 0, 0}, frame...))
	}
	// An onCuePoint.
	cue, _ := amf0.Data{"onCuePoint", amf0.Object{{Key: "name", Value: "sku-1"}}}.Marshal()
	b.Write(append([]byte{4, 0, 0x09, 0xc4, 0, 0, byte(len(cue)), 18, 1, 0, 0, 0}, cue...))
	return b.Bytes()
}

// FuzzRTMPConn feeds arbitrary bytes to one server connection: whatever
// arrives, the connection ends with an error and without a panic (serve
// recovers panics, so a recovered one fails the fuzz target).
func FuzzRTMPConn(f *testing.F) {
	f.Add(rtmpSessionSeed(f))
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Add(append([]byte{3}, make([]byte, 3072)...))

	f.Fuzz(runRTMPInput)
}

func TestRTMPSessionSeedPublishes(t *testing.T) {
	// The seed is a real session, so that fuzzing starts from input that
	// reaches every stage.
	var logs bytes.Buffer
	sink := &fakeSink{}
	newRTMPConn(memServer(&logs, sink), &memConn{r: bytes.NewReader(rtmpSessionSeed(t))}).run()
	if sink.numPubs() != 1 || !strings.Contains(logs.String(), "publisher disconnected") {
		t.Fatalf("seed did not publish:\n%s", logs.String())
	}
	p := sink.pub(0)
	if len(p.units) != 6 || len(p.data) != 1 || p.data[0].Name != "onCuePoint" || p.closes != 1 {
		t.Fatalf("%d units, data %+v, %d closes", len(p.units), p.data, p.closes)
	}
}
