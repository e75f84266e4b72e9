package cues

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/shopcast/shopcast/ingest"
	"github.com/shopcast/shopcast/internal/testpub"
	"github.com/shopcast/shopcast/packager"
)

// logLines is a slog handler's output, safe to read while it is written.
type logLines struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// TestPublisherCues publishes over RTMP, with a real client, onCuePoint
// messages among the frames: a shopcast cue becomes a cue of the stream at
// the message's time, in the store, in the playlist and in band; a
// shopcast end ends one; an invalid cue is refused and logged; other cue
// points are left alone.
func TestPublisherCues(t *testing.T) {
	logs := &logLines{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	store := openStore(t, filepath.Join(t.TempDir(), "cues.db"))
	t.Cleanup(func() { store.Close() })
	svc := &Service{Store: store, Logger: log}
	t.Cleanup(svc.Close) // before the store closes
	m := packager.New(packager.Config{OnStreamStart: svc.StreamStarted, OnData: svc.PublisherData}, log)
	t.Cleanup(m.Close)
	svc.Timeline = m
	rtmp := &ingest.RTMPServer{Address: "127.0.0.1:0", Sink: m, Logger: log}
	if err := rtmp.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rtmp.Close)

	cuePoint := func(at time.Duration, name string, params testpub.ECMAArray) testpub.DataMessage {
		return testpub.DataMessage{Time: at, Name: "onCuePoint", Values: []any{map[string]any{
			"name": name, "type": "event", "time": at.Seconds(), "parameters": params,
		}}}
	}
	sent := []testpub.DataMessage{
		cuePoint(time.Second, PublisherCue, testpub.ECMAArray{"cue": cueBody(t, "enc-1", `"now"`, "1000")}),
		cuePoint(1500*time.Millisecond, PublisherCue, testpub.ECMAArray{"cue": mutate(t, "product.price.amount", `"12,50"`)}),
		cuePoint(2*time.Second, "chapter-2", testpub.ECMAArray{"cue": cueBody(t, "not-a-cue", `"now"`, "")}),
		cuePoint(2*time.Second, PublisherCue, testpub.ECMAArray{"cue": cueBody(t, "enc-2", `"now"`, "")}),
		cuePoint(3*time.Second, PublisherCueEnd, testpub.ECMAArray{"id": "enc-2"}),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	url := "rtmp://" + rtmp.Addr().String() + "/live/shop"
	if err := testpub.Publish(ctx, url, "../testdata/h264_aac.flv", testpub.Options{Speed: 4, Data: sent}); err != nil {
		t.Fatal(err)
	}

	// The messages are placed in order, so once enc-2 has ended the others
	// have been handled.
	deadline := time.Now().Add(10 * time.Second)
	for {
		rec, err := store.Get("shop", "enc-2")
		if err == nil && rec.State == StateEnded {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("enc-2 not ended: %+v %v\n%s", rec, err, logs)
		}
		time.Sleep(10 * time.Millisecond) // polling the store: nothing signals a commit
	}
	enc1, err := store.Get("shop", "enc-1")
	if err != nil || enc1.State != statePlaced {
		t.Fatalf("enc-1 %+v %v", enc1, err)
	}
	// The message's timestamp is the DTS of the media message before it
	// (ingest/rtmp_data.go): within a frame of the time it was sent at,
	// on a media timeline starting at the first keyframe (0 here).
	if enc1.Media > time.Second || enc1.Media < time.Second-100*time.Millisecond {
		t.Errorf("enc-1 at media time %v, sent at 1s", enc1.Media)
	}
	enc2, _ := store.Get("shop", "enc-2")
	if enc2.EndMedia <= enc2.Media {
		t.Errorf("enc-2 from %v ended at %v", enc2.Media, enc2.EndMedia)
	}
	if _, err := store.Get("shop", "not-a-cue"); err == nil {
		t.Error("an onCuePoint of another name became a cue")
	}
	if !strings.Contains(logs.String(), "publisher cue refused") || !strings.Contains(logs.String(), "product.price.amount") {
		t.Errorf("the invalid cue was not logged with its field:\n%s", logs)
	}

	// What a viewer gets: the DATERANGE of both, enc-2 with its END-DATE,
	// and enc-1's ID3 in band.
	fetch := func(file string) []byte {
		t.Helper()
		r, err := m.Fetch(ctx, packager.Request{Stream: "shop", File: file, MSN: -1, Part: -1})
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		return r.Body
	}
	var media string
	for _, l := range strings.Split(string(fetch("index.m3u8")), "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			media = l
			break
		}
	}
	pl := string(fetch(media))
	var ranges []string
	for _, l := range strings.Split(pl, "\n") {
		if strings.HasPrefix(l, "#EXT-X-DATERANGE:") {
			ranges = append(ranges, l)
		}
	}
	if len(ranges) != 2 || !strings.Contains(ranges[0], `ID="enc-1"`) || !strings.Contains(ranges[1], `ID="enc-2"`) ||
		!strings.Contains(ranges[1], "END-DATE=") {
		t.Fatalf("date ranges %q in\n%s", ranges, pl)
	}
	// The cue is placed once the store has it, a commit or two after its
	// message: the parts then carry it, with its presentation_time at the
	// message's time. Read every segment and part listed.
	var inBand int
	for _, l := range strings.Split(pl, "\n") {
		if _, uri, ok := strings.Cut(l, `URI="`); ok && strings.HasPrefix(l, "#EXT-X-PART:") {
			l, _, _ = strings.Cut(uri, `"`)
		}
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		f, err := mp4.DecodeFile(bytes.NewReader(fetch(l)))
		if err != nil {
			t.Fatalf("%s: %v", l, err)
		}
		for _, seg := range f.Segments {
			for _, fr := range seg.Fragments {
				for _, e := range fr.Emsgs {
					if !bytes.Contains(e.MessageData, []byte(`"id":"enc-1"`)) {
						continue
					}
					inBand++
					at := time.Duration(e.PresentationTime) * time.Second / time.Duration(e.TimeScale)
					if d := at - enc1.Media; d < -time.Millisecond || d > time.Millisecond {
						t.Errorf("%s: enc-1's emsg at %v, the cue at %v", l, at, enc1.Media)
					}
				}
			}
		}
	}
	if inBand == 0 {
		t.Errorf("no emsg carries enc-1 in\n%s", pl)
	}
}

// TestPublisherDataClosed: after Close, publisher messages are dropped,
// not placed, and nothing blocks or panics; messages that are not cue
// points never reach the queue.
func TestPublisherDataClosed(t *testing.T) {
	e := newAPIEnv(t, nil)
	cue := packager.DataMessage{Data: ingest.Data{Name: "onCuePoint", Values: []any{map[string]any{
		"name": PublisherCue, "parameters": map[string]any{"cue": cueBody(t, "late", `"now"`, "")},
	}}}}
	e.svc.PublisherData("live", packager.DataMessage{Data: ingest.Data{Name: "onTextData"}})
	e.svc.Close()
	e.svc.Close()
	e.svc.PublisherData("live", cue)
	if _, err := e.store.Get("live", "late"); err == nil {
		t.Fatal("a cue was placed after Close")
	}
}
