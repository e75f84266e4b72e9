package ingest

import (
	"context"
	"errors"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortmplib"

	"github.com/shopcast/shopcast/internal/testpub"
)

// otherHost is a second loopback address: Linux routes all of 127.0.0.0/8 to
// lo, so a client bound to it is, to the server, a publisher on another
// host. Clients that do not bind connect from 127.0.0.1.
const otherHost = "127.0.0.2"

// takeoverServer is an RTMP server whose Registry uses silence, and whose
// read timeout is long enough that only the takeover rule can end a session.
func takeoverServer(t *testing.T, silence time.Duration, configure func(*RTMPServer)) *testServer {
	t.Helper()
	return startTestServer(t, func(s *RTMPServer) {
		s.ReadTimeout = time.Minute
		s.Registry = &Registry{TakeoverSilence: silence}
		if configure != nil {
			configure(s)
		}
		s.Registry.Logger = s.Logger
	})
}

// livePublisher publishes the fixture in real time, in a loop, from
// otherHost, until the test ends or cancel is called; it returns once the
// server has units from it.
func livePublisher(t *testing.T, ts *testServer, path string, opts testpub.Options) (pub *fakePub, cancel func(), done <-chan error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	opts.LocalIP = otherHost
	if opts.Loops == 0 {
		opts.Loops = 30
	}
	ch := make(chan error, 1)
	n := ts.sink.numPubs()
	go func() { ch <- testpub.Publish(ctx, ts.url(path), fixture, opts) }()
	pub = ts.sink.waitPub(t, n, 10*time.Second)
	waitUntil(t, &ts.sink.notifier, 10*time.Second, "units of the live publisher", func() bool {
		ts.sink.mu.Lock()
		defer ts.sink.mu.Unlock()
		return len(pub.units) > 0
	}, nil)
	if !strings.HasPrefix(pub.info.Remote, otherHost+":") {
		t.Fatalf("live publisher connected from %s, want %s", pub.info.Remote, otherHost)
	}
	return pub, cancel, ch
}

func gortmplibPublish(ctx context.Context, u string) error {
	pu, err := url.Parse(u)
	if err != nil {
		return err
	}
	c := &gortmplib.Client{URL: pu, Publish: true}
	if err := c.Initialize(ctx); err != nil {
		return err
	}
	c.Close()
	return nil
}

// newcomer is a second publisher of the fixture to u, from 127.0.0.1.
type newcomer struct {
	name    string
	publish func(ctx context.Context, u string) error
}

// newcomers are gomedia's client (testpub, unpaced) and ffmpeg; ffmpeg's
// skips t when ffmpeg is not installed.
func newcomers(t *testing.T) []newcomer {
	ffmpeg, ffmpegErr := exec.LookPath("ffmpeg")
	return []newcomer{
		{"testpub", func(ctx context.Context, u string) error {
			return testpub.Publish(ctx, u, fixture, testpub.Options{Unpaced: true})
		}},
		{"ffmpeg", func(ctx context.Context, u string) error {
			if ffmpegErr != nil {
				t.Skip("ffmpeg not installed")
			}
			return ffmpegPublish(ctx, ffmpeg, u)
		}},
	}
}

func ffmpegPublish(ctx context.Context, ffmpeg, u string) error {
	out, err := exec.CommandContext(ctx, ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error",
		"-re", "-i", fixture, "-c", "copy", "-f", "flv", u).CombinedOutput()
	if err != nil {
		return errors.New(string(out))
	}
	return nil
}

// TestRTMPTakeoverRefused: with authentication off (the stream key is the
// public name), a second publisher from another address cannot take a
// live stream: gortmplib's client, gomedia's (testpub) and ffmpeg are each
// told "stream is already being published", and the live one goes on.
func TestRTMPTakeoverRefused(t *testing.T) {
	// Long enough that the live publisher, paced in real time, does not
	// fall silent that long on a loaded machine.
	const silence = 2 * time.Second
	ts := takeoverServer(t, silence, nil)
	live, _, liveDone := livePublisher(t, ts, "/live/shop", testpub.Options{})

	for _, tc := range append([]newcomer{{"gortmplib", gortmplibPublish}}, newcomers(t)...) {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			err := tc.publish(testContext(t, 20*time.Second), ts.url("/live/shop"))
			took := time.Since(start)
			if err == nil || !strings.Contains(err.Error(), "already being published") {
				t.Fatalf("second publisher: %v, want a refusal saying the stream is already being published", err)
			}
			// It waited for the live session to fall silent, which it did not.
			if took < silence {
				t.Errorf("refused after %v, before the %v silence could be seen", took, silence)
			}
			ts.logs.waitLine(t, 5*time.Second, "publish refused", "stream=shop", "remote=127.0.0.1:", "already being published")
		})
	}

	select {
	case err := <-liveDone:
		t.Fatalf("the live publisher ended: %v", err)
	default:
	}
	ts.sink.snapshot(func() {
		if len(ts.sink.pubs) != 1 || live.closes != 0 {
			t.Fatalf("%d publications, the live one closed %d times", len(ts.sink.pubs), live.closes)
		}
	})
	if ts.logs.contains("publisher replaced") {
		t.Fatal("a publisher was replaced")
	}
}

// TestRTMPTakeoverAfterDisconnect: the live publisher's connection drops
// (its socket is closed); a publisher from another address then gets the
// name at once, without waiting for the silence.
func TestRTMPTakeoverAfterDisconnect(t *testing.T) {
	const silence = 10 * time.Second
	ts := takeoverServer(t, silence, nil)
	old, cancel, oldDone := livePublisher(t, ts, "/live/shop", testpub.Options{})
	cancel()
	<-oldDone
	ts.sink.waitClosed(t, old, 5*time.Second)

	start := time.Now()
	newDone := make(chan error, 1)
	go func() {
		newDone <- testpub.Publish(testContext(t, 30*time.Second), ts.url("/live/shop"), fixture, testpub.Options{Unpaced: true})
	}()
	cur := ts.sink.waitPub(t, 1, 5*time.Second)
	if took := time.Since(start); took > silence/2 {
		t.Errorf("the newcomer waited %v for a closed session", took)
	}
	if err := <-newDone; err != nil {
		t.Fatalf("newcomer: %v", err)
	}
	if cur.info.Remote == old.info.Remote || !strings.HasPrefix(cur.info.Remote, "127.0.0.1:") {
		t.Fatalf("new publication from %s", cur.info.Remote)
	}
}

// TestRTMPTakeoverAfterSilence is OBS reconnecting after the network hung:
// the old session is still open but silent (no FIN reached the server).
// A publisher from another address (testpub, then ffmpeg) replaces it
// within TakeoverSilence, and the old connection is closed.
func TestRTMPTakeoverAfterSilence(t *testing.T) {
	const silence = time.Second
	for _, tc := range newcomers(t) {
		t.Run(tc.name, func(t *testing.T) {
			ts := takeoverServer(t, silence, nil)
			// Unpaced, so that the stall starts at once; after 2.5s of
			// media, more than the server's 2s track probe reads.
			old, _, oldDone := livePublisher(t, ts, "/live/shop", testpub.Options{Unpaced: true, Loops: 1, StallAfter: 2500 * time.Millisecond})
			// The silence starts once the server has read the burst: on a
			// busy machine that takes longer than the silence itself.
			waitUntil(t, &ts.sink.notifier, 10*time.Second, "the old publisher's burst to be read", func() bool {
				ts.sink.mu.Lock()
				defer ts.sink.mu.Unlock()
				return len(old.units) > 0 && old.units[len(old.units)-1].DTS >= 2300*time.Millisecond
			}, nil)

			start := time.Now()
			newDone := make(chan error, 1)
			go func() { newDone <- tc.publish(testContext(t, 30*time.Second), ts.url("/live/shop")) }()

			select {
			case err := <-oldDone:
				if !errors.Is(err, testpub.ErrServerClosed) {
					t.Fatalf("old publisher ended with %v, want the server to close it", err)
				}
			case <-time.After(silence + 5*time.Second):
				t.Fatal("the silent session is still open")
			}
			cur := ts.sink.waitPub(t, 1, 5*time.Second)
			// Documented: within TakeoverSilence of the last bytes; the
			// slack is the newcomer's handshake and probe on a busy machine.
			if took := time.Since(start); took > silence+3*time.Second {
				t.Errorf("replaced after %v, want within about %v", took, silence)
			}
			if err := <-newDone; err != nil {
				t.Fatalf("newcomer: %v", err)
			}
			// The newcomer is done once its bytes are in the socket; the
			// server may still be reading them.
			waitUntil(t, &ts.sink.notifier, 5*time.Second, "the newcomer's units", func() bool {
				ts.sink.mu.Lock()
				defer ts.sink.mu.Unlock()
				return len(cur.units) > 0
			}, nil)
			ts.sink.snapshot(func() {
				if old.closes != 1 {
					t.Fatalf("old closed %d times", old.closes)
				}
			})
			ts.logs.waitLine(t, time.Second, "publisher replaced", "stream=shop", "old_remote="+old.info.Remote, `reason="old session silent"`)
		})
	}
}

// TestRTMPTakeoverSameKey: with authentication on, the same key from another
// address replaces a live session at once (it is the secret); another key
// of the same name does not.
func TestRTMPTakeoverSameKey(t *testing.T) {
	const silence = 3 * time.Second
	ts := takeoverServer(t, silence, func(s *RTMPServer) {
		s.Auth = &Auth{Enabled: true, Keys: map[string]string{"key-one": "shop", "key-two": "shop"}}
	})
	old, _, oldDone := livePublisher(t, ts, "/live/key-one", testpub.Options{})

	err := testpub.Publish(testContext(t, 20*time.Second), ts.url("/live/key-two"), fixture, testpub.Options{Unpaced: true})
	if err == nil || !strings.Contains(err.Error(), "already being published") {
		t.Fatalf("another key: %v", err)
	}

	start := time.Now()
	sameDone := make(chan error, 1)
	go func() {
		sameDone <- testpub.Publish(testContext(t, 20*time.Second), ts.url("/live/key-one"), fixture, testpub.Options{Unpaced: true})
	}()
	ts.sink.waitPub(t, 1, 10*time.Second)
	// Accepted without waiting out the silence.
	if took := time.Since(start); took >= silence {
		t.Errorf("same key waited %v", took)
	}
	if err := <-sameDone; err != nil {
		t.Fatalf("same key: %v", err)
	}
	if err := <-oldDone; !errors.Is(err, testpub.ErrServerClosed) {
		t.Fatalf("old publisher ended with %v", err)
	}
	ts.logs.waitLine(t, time.Second, "publisher replaced", "stream=shop", "old_remote="+old.info.Remote, `reason="same stream key"`)
	if strings.Contains(ts.logs.String(), "key-one") || strings.Contains(ts.logs.String(), "key-two") {
		t.Fatalf("a stream key is in the log:\n%s", ts.logs.String())
	}
}
