package packager

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"
	gomp4 "github.com/abema/go-mp4"
)

// decodeEmsg reads a box with mp4ff, a parser we did not write.
func decodeEmsg(t *testing.T, box []byte) *mp4.EmsgBox {
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

// goMP4Emsg marshals an emsg box, version 1 of the ID3 scheme, with
// github.com/abema/go-mp4, a second encoder we did not write.
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

// TestEmsgBox: the boxes the packager frames are the ones mp4ff and go-mp4
// encode for the same fields, version 1 of the ID3 scheme, and the same
// inputs always give the same bytes.
func TestEmsgBox(t *testing.T) {
	tag := testID3(`{"id":"c1"}`)
	cases := []struct {
		name      string
		ev        Event
		timescale uint32
		pt        uint64
		duration  uint32
	}{
		{"90 kHz", Event{ID: "a", ID3: tag, EmsgID: 2, Duration: 30 * time.Second}, 90000, 12000 * 90, 30 * 90000},
		{"1 kHz", Event{ID: "a", ID3: tag, EmsgID: 14, Duration: 30 * time.Second}, 1000, 12000, 30000},
		{"rounded", Event{ID: "a", ID3: tag, EmsgID: 1, Duration: 1500 * time.Microsecond}, 1000, 7, 2},
		{"large pt", Event{ID: "a", ID3: tag, EmsgID: 6, Duration: time.Second}, 90000, 1 << 40, 90000},
		{"open-ended", Event{ID: "a", ID3: tag, EmsgID: 4}, 90000, 5, 0xFFFFFFFF},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			box, err := tc.ev.StartBox(tc.timescale, tc.pt)
			if err != nil {
				t.Fatal(err)
			}
			want := &mp4.EmsgBox{Version: 1, TimeScale: tc.timescale, PresentationTime: tc.pt,
				EventDuration: tc.duration, ID: tc.ev.EmsgID, SchemeIDURI: "https://aomedia.org/emsg/ID3", MessageData: tag}
			var b bytes.Buffer
			if err := want.Encode(&b); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(box, b.Bytes()) {
				t.Fatalf("box\n% x\nmp4ff encodes\n% x", box, b.Bytes())
			}
			e := decodeEmsg(t, box)
			if e.Version != 1 || e.Flags != 0 {
				t.Errorf("version %d flags %d", e.Version, e.Flags)
			}
			if e.SchemeIDURI != "https://aomedia.org/emsg/ID3" || e.Value != "" {
				t.Errorf("scheme %q value %q", e.SchemeIDURI, e.Value)
			}
			if e.TimeScale != tc.timescale || e.PresentationTime != tc.pt {
				t.Errorf("timescale %d pt %d", e.TimeScale, e.PresentationTime)
			}
			if e.EventDuration != tc.duration || e.ID != tc.ev.EmsgID {
				t.Errorf("duration %d id %d, want %d %d", e.EventDuration, e.ID, tc.duration, tc.ev.EmsgID)
			}
			if !bytes.Equal(e.MessageData, tag) {
				t.Errorf("message_data differs from the ID3 tag")
			}
			if want := goMP4Emsg(t, tc.timescale, tc.pt, tc.duration, tc.ev.EmsgID, tag); !bytes.Equal(box, want) {
				t.Errorf("box differs from the one go-mp4 marshals")
			}
			// Same inputs, same bytes: re-sends are identical boxes, and a
			// box for other times does not change an earlier one.
			sent := bytes.Clone(box)
			if _, err := tc.ev.StartBox(tc.timescale+1, tc.pt+1); err != nil {
				t.Fatal(err)
			}
			again, _ := tc.ev.StartBox(tc.timescale, tc.pt)
			if !bytes.Equal(again, box) || !bytes.Equal(box, sent) {
				t.Error("box not stable")
			}
		})
	}

	ev := Event{ID: "a", ID3: tag, EmsgID: 2, End: EventEnd{ID3: testID3(`{"id":"c1","end":true}`), EmsgID: 3}}
	box, err := ev.EndBox(90000, 42*90000)
	if err != nil {
		t.Fatal(err)
	}
	if e := decodeEmsg(t, box); e.ID != 3 || e.EventDuration != 0 || e.PresentationTime != 42*90000 ||
		e.TimeScale != 90000 || !bytes.Equal(e.MessageData, ev.End.ID3) {
		t.Fatalf("END emsg %+v", e)
	}
	if b, err := (&Event{ID: "a"}).StartBox(90000, 0); b != nil || err != nil {
		t.Fatalf("an event without ID3 has box % x, %v", b, err)
	}
}

func TestEmsgDurationRange(t *testing.T) {
	ev := Event{ID: "a", ID3: testID3("x"), Duration: 12 * time.Hour}
	if _, err := ev.StartBox(90000, 0); err != nil {
		t.Fatalf("12 h at 90 kHz: %v", err)
	}
	if _, err := ev.StartBox(1_000_000, 0); !errors.Is(err, ErrDurationRange) {
		t.Fatalf("12 h at 1 MHz: %v", err)
	}
	if _, err := ev.StartBox(0, 0); err == nil {
		t.Fatal("timescale 0 accepted")
	}
}

// TestEventJSON: an event is data. Sent as JSON to another process, it
// gives the same boxes and the same DATERANGE line there.
func TestEventJSON(t *testing.T) {
	ev := Event{
		ID: "c1", Time: -1, Wall: time.Date(2025, 6, 1, 18, 0, 12, 0, time.UTC), Duration: 30 * time.Second,
		ID3: testID3(`{"id":"c1"}`), EmsgID: 2, End: EventEnd{ID3: testID3(`{"id":"c1","end":true}`), EmsgID: 3},
		DateRange: &DateRange{Class: "com.example", Attrs: []DateRangeAttr{
			QuotedAttr("X-A", "a"), HexAttr("X-B", []byte{1, 0xab}), NumberAttr("X-C", 2.5)}},
	}
	js, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	var back Event
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatal(err)
	}
	start := ev.Wall
	for name, f := range map[string]func(*Event) (any, error){
		"start": func(e *Event) (any, error) { b, err := e.StartBox(90000, 1234); return string(b), err },
		"end":   func(e *Event) (any, error) { b, err := e.EndBox(90000, 5678); return string(b), err },
		"DATERANGE": func(e *Event) (any, error) {
			return e.DateRangeTag(start, start.Add(10*time.Second))
		},
	} {
		a, err1 := f(&ev)
		b, err2 := f(&back)
		if err1 != nil || err2 != nil || a != b {
			t.Errorf("%s differs after JSON (%v, %v):\n%q\n%q", name, err1, err2, a, b)
		}
	}
}

// BenchmarkEventStartBox is the emsg of an active event re-sent at a
// segment start for another presentation time: a copy of the template
// framed when the event was added, not a new framing.
func BenchmarkEventStartBox(b *testing.B) {
	f, err := newEventFrames(&Event{ID: "a", ID3: testID3(strings.Repeat("x", 400)), EmsgID: 2})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := f.startBox(30*time.Second, 90000, uint64(i)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEventDateRange is an event's DATERANGE line rendered for a new
// end: the dates only, the attributes were rendered when it was added.
func BenchmarkEventDateRange(b *testing.B) {
	ev := &Event{ID: "sneaker-42", DateRange: &DateRange{Class: "com.shopcast.product", Attrs: []DateRangeAttr{
		QuotedAttr("X-COM-SHOPCAST-TITLE", "Court Classic Sneaker"), HexAttr("X-COM-SHOPCAST-CUE", bytes.Repeat([]byte("x"), 400)),
	}}}
	f, err := newEventFrames(ev)
	if err != nil {
		b.Fatal(err)
	}
	start := time.Date(2025, 6, 1, 18, 0, 12, 0, time.UTC)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		_ = renderDateRange(f.drHead, f.drTail, start, start.Add(time.Duration(i)*time.Millisecond), 0)
	}
}
