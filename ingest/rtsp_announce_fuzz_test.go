package ingest_test

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/base"

	"github.com/shopcast/shopcast/ingest"
)

// fuzzDeadline bounds each exchange of FuzzRTSPAnnounce: the server answers
// an ANNOUNCE on loopback in well under a millisecond.
const fuzzDeadline = time.Second

// FuzzRTSPAnnounce sends an ANNOUNCE whose SDP body is the input to a real
// RTSPServer, over a new TCP connection each time. The server must answer
// it (any status) or close that connection, and stay up: an OPTIONS on
// another connection is answered after every input. A panic in the SDP
// parser or in OnAnnounce's checks of the tracks ends the test process.
func FuzzRTSPAnnounce(f *testing.F) {
	for _, sdp := range announceSeeds() {
		f.Add([]byte(sdp))
	}
	srv := &ingest.RTSPServer{Sink: newRecSink(nil), Logger: slog.New(slog.DiscardHandler)}
	addr := startServer(f, srv, false)
	var n atomic.Int64
	f.Fuzz(func(t *testing.T, sdp []byte) {
		// A name per input, so that no input waits for the previous one's
		// session to give its name up.
		path := fmt.Sprintf("rtsp://%s/live/fuzz%d", addr, n.Add(1))
		req := fmt.Appendf(nil, "ANNOUNCE %s RTSP/1.0\r\nCSeq: 1\r\nContent-Type: application/sdp\r\nContent-Length: %d\r\n\r\n", path, len(sdp))
		if _, err := exchange(addr, append(req, sdp...)); err != nil {
			t.Fatalf("ANNOUNCE of %d bytes: %v", len(sdp), err)
		}
		options := fmt.Appendf(nil, "OPTIONS rtsp://%s/live/alive RTSP/1.0\r\nCSeq: 1\r\n\r\n", addr)
		if res, err := exchange(addr, options); err != nil || res == nil || res.StatusCode != base.StatusOK {
			t.Fatalf("OPTIONS after an ANNOUNCE of %d bytes: %v, %v", len(sdp), res, err)
		}
	})
}

// exchange writes req on a new connection to addr and reads the response.
// A connection the server closed instead of answering gives a nil response
// and no error; no answer within fuzzDeadline on an open connection is an
// error.
func exchange(addr string, req []byte) (*base.Response, error) {
	nc, err := net.DialTimeout("tcp", addr, fuzzDeadline)
	if err != nil {
		return nil, err
	}
	// Closed with a reset: tens of thousands of inputs would otherwise
	// leave as many sockets in TIME_WAIT and use up the machine's
	// ephemeral ports.
	_ = nc.(*net.TCPConn).SetLinger(0)
	defer nc.Close()
	if err := nc.SetDeadline(time.Now().Add(fuzzDeadline)); err != nil {
		return nil, err
	}
	if _, err := nc.Write(req); err != nil {
		// The server may close before it has read the whole body (one over
		// gortsplib's 128 KiB limit).
		return nil, closedOr(err)
	}
	var res base.Response
	if err := res.Unmarshal(bufio.NewReader(nc)); err != nil {
		return nil, closedOr(err)
	}
	return &res, nil
}

// closedOr returns nil for the error of a connection the server closed,
// and err otherwise (a timeout: the server neither answered nor closed).
func closedOr(err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("neither answered nor closed within %v: %w", fuzzDeadline, err)
	}
	return nil
}

// announceSeeds are SDPs as encoders send them, and broken ones.
func announceSeeds() []string {
	sdp := func(lines ...string) string { return strings.Join(lines, "\r\n") + "\r\n" }
	head := []string{"v=0", "o=- 0 0 IN IP4 127.0.0.1", "s=Stream", "c=IN IP4 0.0.0.0", "t=0 0"}
	h264 := []string{"m=video 0 RTP/AVP 96", "a=rtpmap:96 H264/90000",
		"a=fmtp:96 packetization-mode=1; sprop-parameter-sets=Z2QAHqzZQKAv+XARAAADAAEAAAMAPA8WLZY=,aOvjyyLA; profile-level-id=64001E",
		"a=control:streamid=0"}
	aac := []string{"m=audio 0 RTP/AVP 97", "b=AS:128", "a=rtpmap:97 MPEG4-GENERIC/48000/2",
		"a=fmtp:97 profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3; config=119056E500",
		"a=control:streamid=1"}
	latm := []string{"m=audio 0 RTP/AVP 97", "a=rtpmap:97 MP4A-LATM/44100/2",
		"a=fmtp:97 profile-level-id=15;object=2;cpresent=0;config=400024203FC0", "a=control:streamid=1"}
	opus := []string{"m=audio 0 RTP/AVP 97", "a=rtpmap:97 opus/48000/2", "a=fmtp:97 sprop-stereo=1", "a=control:streamid=1"}
	h265 := []string{"m=video 0 RTP/AVP 96", "a=rtpmap:96 H265/90000",
		"a=fmtp:96 sprop-vps=QAEMAf//AWAAAAMAkAAAAwAAAwB4mZgJ; sprop-sps=QgEBAWAAAAMAkAAAAwAAAwB4oAPAgBDllmZpJMrgEAAAAwAQAAADAeCA; sprop-pps=RAHBcrRiQA==",
		"a=control:streamid=0"}
	cat := func(parts ...[]string) []string {
		var out []string
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	var many []string
	for i := range 200 {
		many = append(many, fmt.Sprintf("m=audio 0 RTP/AVP %d", 96+i%32), fmt.Sprintf("a=rtpmap:%d opus/48000/2", 96+i%32))
	}
	return []string{
		sdp(cat(head, h264, aac)...),
		sdp(cat(head, h264, latm)...),
		sdp(cat(head, h264, opus)...),
		sdp(cat(head, h265, aac)...),
		sdp(head...),
		sdp(cat(head, many)...),
		// Huge attribute lines: under and over gortsplib's 128 KiB body.
		sdp(cat(head, h264, []string{"a=fmtp:96 sprop-parameter-sets=" + strings.Repeat("Z2QA", 16<<10)})...),
		sdp(cat(head, []string{"a=tool:" + strings.Repeat("x", 130<<10)})...),
		"",
		"garbage\x00\xff\r\n\r\n",
		"v=0\nm=video 0 RTP/AVP 96\na=rtpmap:96 H264/90000\na=fmtp:96 sprop-parameter-sets=,,,\n",
		sdp(cat(head, []string{"m=video 0 RTP/AVP 96", "a=rtpmap:96 H264/0", "a=fmtp:96 packetization-mode=2"})...),
		sdp(cat(head, []string{"m=audio 0 RTP/AVP 97", "a=rtpmap:97 MPEG4-GENERIC/0/0", "a=fmtp:97 sizelength=99;config=ZZ"})...),
	}
}
