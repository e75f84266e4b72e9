package cues

import (
	"bytes"
	"errors"
	"testing"

	"github.com/Eyevinn/mp4ff/mp4"
	gomp4 "github.com/abema/go-mp4"

	"github.com/shopcast/shopcast/packager"
)

// goMP4Emsg marshals an emsg box, version 1 of the ID3 scheme, with
// github.com/abema/go-mp4, an encoder we did not write.
func goMP4Emsg(t *testing.T, timescale uint32, pt uint64, duration, id uint32, message []byte) []byte {
	t.Helper()
	e := &gomp4.Emsg{SchemeIdUri: "https://aomedia.org/emsg/ID3", Timescale: timescale, PresentationTime: pt,
		EventDuration: duration, Id: id, MessageData: message}
	e.SetVersion(1)
	var body bytes.Buffer
	if _, err := gomp4.Marshal(&body, e, gomp4.Context{}); err != nil {
		t.Fatal(err)
	}
	hdr := gomp4.EncodeBoxInfo(&gomp4.BoxInfo{Type: gomp4.BoxTypeEmsg(),
		Size: uint64(gomp4.SmallHeaderSize + body.Len()), HeaderSize: gomp4.SmallHeaderSize})
	return append(hdr, body.Bytes()...)
}

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
		{"open-ended", &open, 2, 90000, 5, 0xFFFFFFFF, 4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ev := cueEvent(t, tc.cue, tc.seq)
			box, err := ev.StartBox(tc.timescale, tc.pt)
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
			// The box the packager frames is the one go-mp4 marshals for
			// these fields.
			if want := goMP4Emsg(t, tc.timescale, tc.pt, tc.duration, tc.id, e.MessageData); !bytes.Equal(box, want) {
				t.Errorf("box differs from a marshalled one")
			}
			// Same inputs, same bytes: re-sends are identical boxes, and a
			// box for other times does not change an earlier one.
			sent := bytes.Clone(box)
			if _, err := ev.StartBox(tc.timescale+1, tc.pt+1); err != nil {
				t.Fatal(err)
			}
			again, _ := ev.StartBox(tc.timescale, tc.pt)
			if !bytes.Equal(again, box) || !bytes.Equal(box, sent) {
				t.Error("box not stable")
			}
		})
	}
}

func TestEmsgEnd(t *testing.T) {
	ev := cueEvent(t, exampleCue(t), 1) // sneaker-42
	box, err := ev.EndBox(90000, 42*90000)
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
	ev := cueEvent(t, c, 1)
	if _, err := ev.StartBox(90000, 0); err != nil {
		t.Fatalf("12 h at 90 kHz: %v", err)
	}
	if _, err := ev.StartBox(1_000_000, 0); !errors.Is(err, packager.ErrDurationRange) {
		t.Fatalf("12 h at 1 MHz: %v", err)
	}
	if _, err := ev.StartBox(0, 0); err == nil {
		t.Fatal("timescale 0 accepted")
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
