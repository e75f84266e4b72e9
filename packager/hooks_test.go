package packager

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"time"
)

// hookLog collects what Hooks hand over, in order.
type hookLog struct {
	mu     sync.Mutex
	segs   []SegmentInfo
	events []EventInfo
	ends   []StreamEnd
	order  []string
}

func (h *hookLog) hooks() Hooks {
	return Hooks{
		OnSegment: func(si SegmentInfo) {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.segs = append(h.segs, si)
			h.order = append(h.order, fmt.Sprintf("seg%d", si.MSN))
		},
		OnEvent: func(ei EventInfo) {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.events = append(h.events, ei)
			h.order = append(h.order, "event "+ei.Event.ID)
		},
		OnStreamEnd: func(se StreamEnd) {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.ends = append(h.ends, se)
			h.order = append(h.order, "end")
		},
	}
}

// TestHooks checks what a recorder is handed: each complete segment with
// the very bytes viewers fetch and its init section, the discontinuity of a
// publisher back within the grace period in the same session, events with
// the times the live DATERANGE shows, and the end of the session; a
// publisher after the end starts another session.
func TestHooks(t *testing.T) {
	t.Parallel()
	h := &hookLog{}
	m := newTestManager(t, Config{Hooks: h.hooks(), GracePeriod: time.Hour})
	sy := publish(t, m)
	sy.frames(200) // 3 segments of 2 s, the 4th open
	at, err := m.AddEvent("test", Event{ID: "a", Time: 3 * time.Second, Duration: time.Second, DateRange: &DateRange{Class: "c"}})
	if err != nil {
		t.Fatal(err)
	}
	sy.frames(60)
	sy.pub.Close()
	second := publish(t, m)
	second.frames(130)

	h.mu.Lock()
	segs := append([]SegmentInfo(nil), h.segs...)
	events := append([]EventInfo(nil), h.events...)
	h.mu.Unlock()
	if len(segs) < 5 {
		t.Fatalf("%d segments handed over", len(segs))
	}
	disc := 0
	for i, si := range segs {
		live := mustFetch(t, m, fileReq(fmt.Sprintf("seg%d.m4s", si.MSN))).Body
		if !bytes.Equal(live, si.Body) || &live[0] != &si.Body[0] {
			t.Errorf("segment %d: not the bytes (the slice) viewers get", si.MSN)
		}
		init := mustFetch(t, m, fileReq(si.Init.Name)).Body
		if !bytes.Equal(init, si.Init.Body) {
			t.Errorf("segment %d: init %s differs", si.MSN, si.Init.Name)
		}
		if len(si.Init.Codecs) != 2 || si.Init.Width == 0 || si.TargetDuration != 2 {
			t.Errorf("segment %d: init %+v, target %d", si.MSN, si.Init.Codecs, si.TargetDuration)
		}
		if i > 0 && si.MSN != segs[i-1].MSN+1 {
			t.Errorf("segment %d after %d", si.MSN, segs[i-1].MSN)
		}
		if si.Session != segs[0].Session {
			t.Errorf("segment %d: session %d, want %d", si.MSN, si.Session, segs[0].Session)
		}
		if si.Discontinuity {
			disc++
			if si.Init.Name == segs[0].Init.Name {
				t.Errorf("segment %d: the reconnect kept init %s", si.MSN, si.Init.Name)
			}
		}
	}
	if disc != 1 {
		t.Errorf("%d discontinuities, want 1 (the reconnect)", disc)
	}
	if len(events) != 1 || events[0].Event.ID != "a" || events[0].Start != at ||
		events[0].End.Media != 4*time.Second || !events[0].End.Wall.Equal(at.Wall.Add(time.Second)) {
		t.Fatalf("events %+v, want a at %+v for 1s", events, at)
	}
	// The tag a recorder renders is the live one.
	tag, err := events[0].Event.DateRangeTag(events[0].Start.Wall, events[0].End.Wall)
	if err != nil {
		t.Fatal(err)
	}
	pl := mustFetch(t, m, mediaReq(-1, -1, SkipNone)).Body
	if !bytes.Contains(pl, []byte(tag+"\n")) {
		t.Errorf("live playlist lacks %s:\n%s", tag, pl)
	}

	// The session ends with the packager; the end comes after its last
	// segment.
	m.Close()
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.ends) != 1 || h.ends[0].Session != segs[0].Session || h.order[len(h.order)-1] != "end" {
		t.Errorf("ends %+v, order %v", h.ends, h.order)
	}
}

// TestHooksNewSession checks that a publisher arriving after the stream
// ended starts a new session, and that an ended stream's events are not
// handed over.
func TestHooksNewSession(t *testing.T) {
	t.Parallel()
	h := &hookLog{}
	m := newTestManager(t, Config{Hooks: h.hooks(), GracePeriod: 10 * time.Millisecond, EndedLinger: time.Hour})
	sy := publish(t, m)
	sy.frames(130)
	sy.pub.Close()
	eventually(t, 5*time.Second, "the stream to end", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return len(h.ends) == 1
	})
	second := publish(t, m)
	second.frames(130)
	h.mu.Lock()
	defer h.mu.Unlock()
	first, last := h.segs[0], h.segs[len(h.segs)-1]
	if first.Session == last.Session || last.Discontinuity {
		t.Errorf("sessions %d and %d, discontinuity %v: want a new session, no discontinuity", first.Session, last.Session, last.Discontinuity)
	}
	if h.ends[0].Session != first.Session {
		t.Errorf("ended session %d, want %d", h.ends[0].Session, first.Session)
	}
}
