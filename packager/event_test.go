package packager

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shopcast/shopcast/ingest"
)

// eventDateRange is the DateRange of a test event: no CLASS, one
// attribute.
func eventDateRange(id string) *DateRange {
	return &DateRange{Attrs: []DateRangeAttr{QuotedAttr("X-TEST-ID", id)}}
}

// liveStream returns a stream on default settings with 70 frames published.
func liveStream(t *testing.T) (*synth, *Stream) {
	t.Helper()
	m := newTestManager(t, Config{})
	sy := publish(t, m)
	sy.frames(70)
	s, ok := m.Stream("test")
	if !ok {
		t.Fatal("no stream")
	}
	return sy, s
}

// TestEventNowResolvedByFrame: a "now" event is resolved by the frame that
// reaches the packager, under the stream lock; a playlist rendered right
// then, before AddEvent's goroutine wakes up, must already show its
// START-DATE and end. (It once showed 0001-01-01 and no end.)
func TestEventNowResolvedByFrame(t *testing.T) {
	sy, s := liveStream(t)
	// The state AddEvent leaves while it waits for the next frame.
	s.mu.Lock()
	es, err := newEventState(Event{ID: "now1", Now: true, Duration: time.Second, DateRange: eventDateRange("now1")})
	if err == nil {
		err = s.addEvent(es)
	}
	s.mu.Unlock()
	if err != nil || !es.pendingNow {
		t.Fatalf("addEvent: %v, pending %v", err, es != nil && es.pendingNow)
	}

	sy.next() // resolves it; AddEvent would wake up only after this

	s.mu.Lock()
	lines := s.dateRanges(0, -1<<62)
	media, wall := es.media, s.mediaToWall(es.media)
	s.mu.Unlock()
	if len(lines) != 1 {
		t.Fatalf("date ranges %q", lines)
	}
	wantStart := `START-DATE="` + wall.UTC().Format(dateRangeTime) + `"`
	wantEnd := `END-DATE="` + wall.Add(time.Second).UTC().Format(dateRangeTime) + `"`
	if !strings.Contains(lines[0], wantStart) || !strings.Contains(lines[0], wantEnd) {
		t.Errorf("rendered before AddEvent woke up: %s\nwant %s and %s (media %v)", lines[0], wantStart, wantEnd, media)
	}
}

// TestEventNowAddEvent: AddEvent with Now returns the time of the next
// frame, and the playlist shows the same date.
func TestEventNowAddEvent(t *testing.T) {
	m := newTestManager(t, Config{})
	sy := publish(t, m)
	sy.frames(70)
	type result struct {
		at  EventTime
		err error
	}
	done := make(chan result, 1)
	go func() {
		at, err := m.AddEvent("test", Event{ID: "now2", Now: true, DateRange: eventDateRange("now2")})
		done <- result{at, err}
	}()
	s, _ := m.Stream("test")
	eventually(t, 5*time.Second, "the event to wait for a frame", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.events) == 1 && s.events[0].pendingNow
	})
	sy.next()
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	last := sy.sent[len(sy.sent)-1]
	if r.at.Media != last.pts {
		t.Errorf("media time %v, the frame's PTS %v", r.at.Media, last.pts)
	}
	sy.frames(20)
	body := string(mustFetch(t, m, mediaReq(-1, -1, SkipNone)).Body)
	if want := `ID="now2",START-DATE="` + r.at.Wall.UTC().Format(dateRangeTime) + `"`; !strings.Contains(body, want) {
		t.Errorf("playlist lacks %s:\n%s", want, body)
	}
}

// TestLiveEvents: parts look through Stream.live, which must keep every
// event a part may still carry (not placed yet, or active, or with an end
// box to place) and drop the others, while the playlist keeps listing
// them.
func TestLiveEvents(t *testing.T) {
	sy, s := liveStream(t)
	s.mu.Lock()
	start := s.lastEnd
	s.mu.Unlock()
	add := func(id string, at, dur time.Duration) {
		t.Helper()
		if _, err := s.AddEvent(Event{ID: id, Time: at, Duration: dur, ID3: testID3(id), End: EventEnd{ID3: testID3(id + " end")},
			DateRange: eventDateRange(id)}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 10 {
		add(fmt.Sprintf("short%d", i), start+time.Duration(i)*50*time.Millisecond, 100*time.Millisecond)
	}
	add("open", start, 0)
	add("later", start+10*time.Second, time.Second) // scheduled past the frames below
	sy.frames(90)                                   // 3 s: the short ones start and end

	live := func() []string {
		s.mu.Lock()
		defer s.mu.Unlock()
		var ids []string
		for _, es := range s.live {
			ids = append(ids, es.ev.ID)
		}
		return ids
	}
	if got := live(); !slices.Equal(got, []string{"open", "later"}) {
		t.Fatalf("live after the short events ended: %v", got)
	}
	s.mu.Lock()
	listed := len(s.dateRanges(0, -1<<62))
	s.mu.Unlock()
	if listed != 12 {
		t.Errorf("playlist lists %d date ranges, want all 12", listed)
	}

	// An explicit end keeps the event until its end box is placed.
	if _, err := s.EndEvent("open"); err != nil {
		t.Fatal(err)
	}
	if got := live(); !slices.Contains(got, "open") {
		t.Fatalf("ended event left before its end box was placed: %v", got)
	}
	sy.frames(30)
	s.mu.Lock()
	var open *eventState
	for _, es := range s.events {
		if es.ev.ID == "open" {
			open = es
		}
	}
	endPlaced := open.endPlaced
	s.mu.Unlock()
	if !endPlaced {
		t.Fatal("end box not placed")
	}
	if got := live(); !slices.Equal(got, []string{"later"}) {
		t.Fatalf("live after the end: %v", got)
	}
}

// TestDataMessageMediaTime: a publisher's data message reaches OnData on
// the media timeline of the frames it was sent with.
func TestDataMessageMediaTime(t *testing.T) {
	var got []DataMessage
	m := newTestManager(t, Config{OnData: func(stream string, msg DataMessage) {
		if stream != "test" {
			t.Errorf("stream %q", stream)
		}
		got = append(got, msg) // called on the publisher's goroutine: this one
	}})
	sy := publish(t, m, func(s *synth) { s.start = 21 * time.Millisecond })
	sy.pub.WriteData(&ingest.Data{Name: "early", Time: 0})
	sy.frames(30)
	first, tenth := sy.sent[0].dts, sy.sent[10].dts
	sy.pub.WriteData(&ingest.Data{Name: "tenth", Time: tenth})
	sy.pub.WriteData(&ingest.Data{Name: "before the first frame", Time: first - time.Second})
	sy.pub.Close()
	sy.pub.WriteData(&ingest.Data{Name: "after close", Time: tenth})

	want := []struct {
		name  string
		media time.Duration
	}{
		{"early", 0}, // no frame yet: where the first one lands
		{"tenth", tenth - first},
		{"before the first frame", 0},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d messages, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		if got[i].Name != w.name || got[i].MediaTime != w.media {
			t.Errorf("message %d: %s at %v, want %s at %v", i, got[i].Name, got[i].MediaTime, w.name, w.media)
		}
	}
}
