package cues

import (
	"bytes"
	"errors"
	"testing"

	"github.com/Eyevinn/mp4ff/mp4"
)

// parseEmsg reads a box with github.com/Eyevinn/mp4ff, a parser we did not
// write.
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

func TestEmsgFields(t *testing.T) {
	c := exampleCue(t) // duration_ms 30000
	wire, _ := c.Wire()
	tag, _ := EncodeID3(ID3Description, wire)
	open := *c
	open.DurationMs = 0

	cases := []struct {
		name      string
		cue       *Cue
		seq       uint32
		timescale uint32
		pt        uint64
		duration  uint32
		id        uint32
	}{
		{"90 kHz", c, 1, 90000, 12000 * 90, 30 * 90000, 2},
		{"1 kHz", c, 7, 1000, 12000, 30000, 14},
		{"large pt", c, 3, 90000, 1 << 40, 30 * 90000, 6},
		{"open-ended", &open, 2, 90000, 5, DurationUnknown, 4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fn, err := StartBox(tc.cue, tc.seq)
			if err != nil {
				t.Fatal(err)
			}
			box, err := fn(tc.timescale, tc.pt)
			if err != nil {
				t.Fatal(err)
			}
			e := parseEmsg(t, box)
			if e.Version != 1 || e.Flags != 0 {
				t.Errorf("version %d flags %d", e.Version, e.Flags)
			}
			if e.SchemeIDURI != "https://aomedia.org/emsg/ID3" || e.Value != "" {
				t.Errorf("scheme %q value %q", e.SchemeIDURI, e.Value)
			}
			if e.TimeScale != tc.timescale || e.PresentationTime != tc.pt {
				t.Errorf("timescale %d pt %d", e.TimeScale, e.PresentationTime)
			}
			if e.EventDuration != tc.duration || e.ID != tc.id {
				t.Errorf("duration %d id %d, want %d %d", e.EventDuration, e.ID, tc.duration, tc.id)
			}
			if tc.cue == c && !bytes.Equal(e.MessageData, tag) {
				t.Errorf("message_data differs from the ID3 tag")
			}
			frames, err := DecodeID3(e.MessageData)
			if err != nil || len(frames) != 1 || frames[0].Description != ID3Description {
				t.Fatalf("message_data: %v %+v", err, frames)
			}
			// The box built from the cue's template is the one go-mp4
			// marshals for these fields.
			want, err := Emsg(tc.timescale, tc.pt, tc.duration, tc.id, e.MessageData)
			if err != nil || !bytes.Equal(box, want) {
				t.Errorf("box differs from a marshalled one (%v)", err)
			}
			// Same inputs, same bytes: re-sends are identical boxes, and a
			// box for other times does not change an earlier one.
			sent := bytes.Clone(box)
			if _, err := fn(tc.timescale+1, tc.pt+1); err != nil {
				t.Fatal(err)
			}
			again, _ := fn(tc.timescale, tc.pt)
			if !bytes.Equal(again, box) || !bytes.Equal(box, sent) {
				t.Error("box not stable")
			}
		})
	}
}

func TestEmsgEnd(t *testing.T) {
	fn, err := EndBox("sneaker-42", 1)
	if err != nil {
		t.Fatal(err)
	}
	box, err := fn(90000, 42*90000)
	if err != nil {
		t.Fatal(err)
	}
	e := parseEmsg(t, box)
	start, end := EmsgIDs(1)
	if e.ID != end || e.ID == start || e.EventDuration != 0 || e.PresentationTime != 42*90000 || e.TimeScale != 90000 {
		t.Fatalf("END emsg %+v", e)
	}
	frames, err := DecodeID3(e.MessageData)
	if err != nil || len(frames) != 1 || frames[0].Value != `{"v":1,"id":"sneaker-42","end":true}` {
		t.Fatalf("END message %v %+v", err, frames)
	}
}

func TestEmsgDurationRange(t *testing.T) {
	c := exampleCue(t)
	c.DurationMs = MaxDurationMs // 12 h: fits at 90 kHz
	fn, _ := StartBox(c, 1)
	if _, err := fn(90000, 0); err != nil {
		t.Fatalf("12 h at 90 kHz: %v", err)
	}
	if _, err := fn(1_000_000, 0); !errors.Is(err, ErrDurationRange) {
		t.Fatalf("12 h at 1 MHz: %v", err)
	}
	if _, err := fn(0, 0); err == nil {
		t.Fatal("timescale 0 accepted")
	}
}

func TestEmsgGolden(t *testing.T) {
	fn, err := StartBox(exampleCue(t), 1)
	if err != nil {
		t.Fatal(err)
	}
	box, err := fn(90000, 12000*90)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "example.emsg", box)
}

func BenchmarkStartBox(b *testing.B) {
	fn, err := StartBox(exampleCue(b), 1)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := fn(90000, uint64(i)); err != nil {
			b.Fatal(err)
		}
	}
}
