package cues

import (
	"bytes"
	"testing"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/shopcast/shopcast/packager"
)

// The packager frames the emsg boxes (packager/emsg_test.go checks them
// against mp4ff and go-mp4); these tests check what a cue gives it to frame
// them from: the emsg ids, the duration and the ID3 tags of NewEvent.

// cueEvent is the packager event of c with sequence number seq.
func cueEvent(t testing.TB, c *Cue, seq uint32) packager.Event {
	t.Helper()
	ev, err := NewEvent(c, seq)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// parseEmsg reads a box with github.com/Eyevinn/mp4ff, a parser we did not
// write: for the tests that read the boxes the fake timeline has the
// packager frame.
func parseEmsg(t *testing.T, box []byte) *mp4.EmsgBox {
	t.Helper()
	b, err := mp4.DecodeBox(0, bytes.NewReader(box))
	if err != nil {
		t.Fatal(err)
	}
	e, ok := b.(*mp4.EmsgBox)
	if !ok {
		t.Fatalf("decoded a %T", b)
	}
	if int(e.Size()) != len(box) {
		t.Fatalf("box size %d, have %d bytes", e.Size(), len(box))
	}
	return e
}

func TestEventEmsgFields(t *testing.T) {
	c := exampleCue(t) // duration_ms 30000
	wire, _ := c.Wire()
	tag, _ := EncodeID3(ID3Description, wire)
	open := *c
	open.DurationMs = 0

	cases := []struct {
		name     string
		cue      *Cue
		seq      uint32
		duration time.Duration
		id       uint32
	}{
		{"seq 1", c, 1, 30 * time.Second, 2},
		{"seq 7", c, 7, 30 * time.Second, 14},
		{"seq 3", c, 3, 30 * time.Second, 6},
		{"open-ended", &open, 2, 0, 4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ev := cueEvent(t, tc.cue, tc.seq)
			if ev.Duration != tc.duration || ev.EmsgID != tc.id {
				t.Errorf("duration %v id %d, want %v %d", ev.Duration, ev.EmsgID, tc.duration, tc.id)
			}
			if tc.cue == c && !bytes.Equal(ev.ID3, tag) {
				t.Errorf("the event's ID3 differs from the cue's tag")
			}
			frames, err := DecodeID3(ev.ID3)
			if err != nil || len(frames) != 1 || frames[0].Description != ID3Description {
				t.Fatalf("ID3: %v %+v", err, frames)
			}
		})
	}
}

func TestEventEnd(t *testing.T) {
	ev := cueEvent(t, exampleCue(t), 1) // sneaker-42
	start, end := EmsgIDs(1)
	if ev.End.EmsgID != end || ev.End.EmsgID == start || ev.EmsgID != start {
		t.Fatalf("END emsg id %d (start %d), want %d", ev.End.EmsgID, ev.EmsgID, end)
	}
	frames, err := DecodeID3(ev.End.ID3)
	if err != nil || len(frames) != 1 || frames[0].Value != `{"v":1,"id":"sneaker-42","end":true}` {
		t.Fatalf("END message %v %+v", err, frames)
	}
}

// TestEventDurationRange: the longest cue lasts 12 h, which an emsg
// event_duration holds at 90 kHz (the packager's ErrDurationRange at other
// timescales is checked in packager/emsg_test.go).
func TestEventDurationRange(t *testing.T) {
	c := exampleCue(t)
	c.DurationMs = MaxDurationMs
	ev := cueEvent(t, c, 1)
	if ev.Duration != 12*time.Hour {
		t.Fatalf("duration %v, want 12h", ev.Duration)
	}
	if _, err := ev.StartBox(90000, 0); err != nil {
		t.Fatalf("12 h at 90 kHz: %v", err)
	}
}

func TestEmsgGolden(t *testing.T) {
	ev := cueEvent(t, exampleCue(t), 1)
	box, err := ev.StartBox(90000, 12000*90)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "example.emsg", box)
}
