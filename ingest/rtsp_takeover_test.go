package ingest_test

import (
	"context"
	"net"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"

	"github.com/shopcast/shopcast/ingest"
)

// rtspOtherHost is a second loopback address (Linux routes 127.0.0.0/8 to
// lo): a client bound to it is, to the server, a publisher on another host.
const rtspOtherHost = "127.0.0.2"

// rtspTakeoverServer is an RTSP server whose Registry uses silence, and whose
// read timeout is long enough that only the takeover rule ends a session.
func rtspTakeoverServer(t *testing.T, silence time.Duration) (string, *recSink, *logBuf) {
	t.Helper()
	log, logs := newLog(t)
	sink := newRecSink(nil)
	srv := &ingest.RTSPServer{Sink: sink, Logger: log, ReadTimeout: time.Minute,
		Registry: &ingest.Registry{Logger: log, TakeoverSilence: silence}}
	return startServer(t, srv, false), sink, logs
}

// rtspLive publishes the fixture from rtspOtherHost over TCP, paced, until
// stop is called (then the session stays open, silent) or the test ends.
func rtspLive(t *testing.T, addr string, sink *recSink) (p *testPublisher, stop func()) {
	t.Helper()
	fx := loadFixture(t, "rtsp_h264_aac.ts")
	p = newTestPublisher(t, fx, publishOpts{transport: gortsplib.TransportTCP})
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(rtspOtherHost)}}
	p.c.DialContext = d.DialContext
	if err := p.start("rtsp://" + addr + "/live/cam"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.close)
	n := len(sink.snapshot())
	frames := p.schedule()
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for loop := int64(0); ; loop++ {
			select {
			case <-quit:
				return
			default:
			}
			span := frames[len(frames)-1].dts - frames[0].dts + 3000
			if p.send(frames, loop*span, 30*time.Millisecond) != nil {
				return
			}
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { close(quit); wg.Wait() }) }
	t.Cleanup(stop)
	sink.wait(t, "the live publication", func() bool { return len(sink.pubs) > n && len(sink.pubs[n].units) > 0 })
	if r := sink.snapshot()[n].info.Remote; !strings.HasPrefix(r, rtspOtherHost+":") {
		t.Fatalf("live publisher from %s", r)
	}
	return p, stop
}

// TestRTSPTakeoverRefused: a second RTSP publisher from another address
// (gortsplib's client, then ffmpeg) cannot take a live stream: its ANNOUNCE
// is answered 409 and the live one goes on.
func TestRTSPTakeoverRefused(t *testing.T) {
	const silence = time.Second
	addr, sink, logs := rtspTakeoverServer(t, silence)
	rtspLive(t, addr, sink)
	fx := loadFixture(t, "rtsp_h264_aac.ts")

	second := newTestPublisher(t, fx, publishOpts{transport: gortsplib.TransportTCP})
	start := time.Now()
	err := second.start("rtsp://" + addr + "/live/cam")
	if err == nil {
		second.close()
		t.Fatal("the second publisher was accepted")
	}
	if st := statusOf(err); st != 409 || !strings.Contains(err.Error(), "Already Being Published") {
		t.Fatalf("second publisher: %v (status %d), want 409 Stream Is Already Being Published", err, st)
	}
	if took := time.Since(start); took < silence {
		t.Errorf("refused after %v, before the %v silence could be seen", took, silence)
	}
	logs.waitLine(t, "rtsp publish refused", "remote=127.0.0.1:", "status=409", "stream=cam", "already being published")

	if ffmpeg, err := exec.LookPath("ffmpeg"); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error",
			"-re", "-i", "../testdata/h264_aac.flv", "-c", "copy",
			"-f", "rtsp", "-rtsp_transport", "tcp", "rtsp://"+addr+"/live/cam").CombinedOutput()
		if err == nil || !strings.Contains(string(out), "409") {
			t.Errorf("ffmpeg: %v, want a 409 refusal:\n%s", err, out)
		}
	}

	pubs := sink.snapshot()
	if len(pubs) != 1 || pubs[0].closed {
		t.Fatalf("%d publications, the live one closed: %v", len(pubs), len(pubs) > 0 && pubs[0].closed)
	}
}

// TestRTSPTakeoverAfterDisconnect: the live publisher's connection is
// closed; a publisher from another address gets the name at once.
func TestRTSPTakeoverAfterDisconnect(t *testing.T) {
	const silence = 10 * time.Second
	addr, sink, _ := rtspTakeoverServer(t, silence)
	first, stop := rtspLive(t, addr, sink)
	stop()
	first.close()
	sink.wait(t, "the first publication closed", func() bool { return sink.pubs[0].closed })

	fx := loadFixture(t, "rtsp_h264_aac.ts")
	second := newTestPublisher(t, fx, publishOpts{transport: gortsplib.TransportTCP})
	start := time.Now()
	if err := second.start("rtsp://" + addr + "/live/cam"); err != nil {
		t.Fatal(err)
	}
	defer second.close()
	if took := time.Since(start); took > silence/2 {
		t.Errorf("the newcomer waited %v for a closed session", took)
	}
	if err := second.send(second.schedule()[:10], 0, 0); err != nil {
		t.Fatal(err)
	}
	sink.wait(t, "the second publication", func() bool { return len(sink.pubs) == 2 && len(sink.pubs[1].units) > 0 })
}

// TestRTSPTakeoverAfterSilence: the live publisher stops sending but its
// session stays open (a hung encoder, a network gone without a FIN); a
// publisher from another address replaces it within TakeoverSilence.
func TestRTSPTakeoverAfterSilence(t *testing.T) {
	const silence = time.Second
	addr, sink, logs := rtspTakeoverServer(t, silence)
	first, stop := rtspLive(t, addr, sink)
	stop()

	fx := loadFixture(t, "rtsp_h264_aac.ts")
	second := newTestPublisher(t, fx, publishOpts{transport: gortsplib.TransportTCP})
	start := time.Now()
	if err := second.start("rtsp://" + addr + "/live/cam"); err != nil {
		t.Fatal(err)
	}
	defer second.close()
	if took := time.Since(start); took > silence+3*time.Second {
		t.Errorf("replaced after %v, want within about %v", took, silence)
	}
	if err := second.send(second.schedule()[:10], 0, 0); err != nil {
		t.Fatal(err)
	}
	sink.wait(t, "second publication, first closed", func() bool {
		return len(sink.pubs) == 2 && sink.pubs[0].closed && len(sink.pubs[1].units) > 0
	})
	logs.waitLine(t, "publisher replaced", "stream=cam", "old_remote="+rtspOtherHost, `reason="old session silent"`)

	done := make(chan error, 1)
	go func() { done <- first.c.Wait() }()
	select {
	case <-done:
	case <-time.After(waitTimeout):
		t.Fatal("the replaced publisher's connection is still open")
	}
}
