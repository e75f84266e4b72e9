package main

import (
	"bytes"
	"context"
	"encoding/json"

	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/shopcast/shopcast/internal/testpub"
)

// TestE2ECues posts a product cue while a publisher streams and checks that
// it reaches the stream in both forms players read: an emsg box (read by
// mp4ff) in the part that holds its media time, with that exact
// presentation time, and an EXT-X-DATERANGE in the media playlist.
func TestE2ECues(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	srv := startServer(t, "-grace_period", "1s")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	go func() { _ = testpub.Publish(ctx, srv.rtmp+"/live/shop", fixture, testpub.Options{Loops: 3}) }()
	base := srv.http + "/live/shop/"
	waitFor(t, 15*time.Second, "the stream to appear", func() bool {
		code, _, _ := get(t, base+"index.m3u8")
		return code == 200
	})

	cue, err := os.ReadFile("../../testdata/cues_example.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(cue, &doc); err != nil {
		t.Fatal(err)
	}
	doc["at"] = "now"
	body, _ := json.Marshal(doc)
	api := srv.http + "/api/v1/streams/shop/cues"
	resp, err := http.Post(api, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	created, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST cue: %d %s", resp.StatusCode, created)
	}
	var got struct {
		MediaTimeMs     int64  `json:"media_time_ms"`
		ProgramDateTime string `json:"program_date_time"`
	}
	if err := json.Unmarshal(created, &got); err != nil {
		t.Fatal(err)
	}

	// Refusals: bad JSON names the field, unknown stream is a 404, a
	// duplicate id is refused.
	for _, c := range []struct {
		url, body string
		status    int
	}{
		{api, `{"v":1,"id":"x1","type":"product","product":{"sku":"a","title":"t","price":{"amount":"oops","currency":"EUR"},"image_url":"https://a/b.jpg","url":"https://a/b"}}`, 400},
		{srv.http + "/api/v1/streams/nope/cues", string(body), 404},
		{api, string(body), 409},
	} {
		r, err := http.Post(c.url, "application/json", strings.NewReader(c.body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if r.StatusCode != c.status {
			t.Errorf("POST %s: %d %s, want %d", c.url, r.StatusCode, b, c.status)
		}
	}

	// The playlist carries the DATERANGE; find the part with the emsg.
	var pl []byte
	waitFor(t, 10*time.Second, "the DATERANGE in the playlist", func() bool {
		_, pl, _ = get(t, base+"stream.m3u8")
		return strings.Contains(string(pl), `#EXT-X-DATERANGE:ID="sneaker-42"`)
	})
	if !strings.Contains(string(pl), "CAN-SKIP-DATERANGES=YES") {
		t.Error("CAN-SKIP-DATERANGES missing")
	}
	start := regexp.MustCompile(`ID="sneaker-42"[^\n]*START-DATE="([^"]+)"`).FindSubmatch(pl)
	if start == nil || string(start[1]) != got.ProgramDateTime {
		t.Errorf("DATERANGE START-DATE %q, API said %q", start, got.ProgramDateTime)
	}

	want := uint64(got.MediaTimeMs) * 90
	found := false
	waitFor(t, 10*time.Second, "the cue's emsg in a part", func() bool {
		_, pl, _ = get(t, base+"stream.m3u8")
		for _, uri := range regexp.MustCompile(`URI="(part\d+\.m4s)"`).FindAllSubmatch(pl, -1) {
			_, b, _ := get(t, base+string(uri[1]))
			f, err := mp4.DecodeFile(bytes.NewReader(b))
			if err != nil || len(f.Segments) == 0 {
				continue
			}
			for _, frag := range f.Segments[0].Fragments {
				for _, e := range frag.Emsgs {
					if e.SchemeIDURI != "https://aomedia.org/emsg/ID3" || e.Version != 1 {
						continue
					}
					if !strings.Contains(string(e.MessageData), "sneaker-42") {
						continue
					}
					found = true
					// Frame-exact: the emsg carries the media time the API
					// returned, within the millisecond rounding of the JSON.
					if d := int64(e.PresentationTime) - int64(want); d < -90 || d > 90 {
						t.Errorf("emsg presentation_time %d, API media time %d (90 kHz)", e.PresentationTime, want)
					}
					if e.TimeScale != 90000 {
						t.Errorf("emsg timescale %d", e.TimeScale)
					}
					// The part's decode time range holds the cue.
					base := frag.Moof.Traf.Tfdt.BaseMediaDecodeTime()
					if e.PresentationTime+90 < base {
						t.Errorf("emsg at %d in a part starting at %d", e.PresentationTime, base)
					}
					return true
				}
			}
		}
		return false
	})
	if !found {
		t.Fatal("no emsg")
	}

	// DELETE ends the cue: the DATERANGE gets its end.
	req, _ := http.NewRequest(http.MethodDelete, api+"/sneaker-42", nil)
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusOK {
		t.Fatalf("DELETE: %d", r.StatusCode)
	}
}
