package packager

import (
	"context"
	"testing"
)

func TestSmoke(t *testing.T) {
	m := New(Config{}, nil)
	defer m.Close()
	sy, info := newSynth(t)
	pub, err := m.Publish(info)
	if err != nil {
		t.Fatal(err)
	}
	sy.pub = pub
	sy.frames(30 * 9)
	r, err := m.Fetch(context.Background(), Request{Stream: "test", File: "stream.m3u8", MSN: -1, Part: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", r.Body)
	r, err = m.Fetch(context.Background(), Request{Stream: "test", File: "index.m3u8", MSN: -1, Part: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", r.Body)
}
