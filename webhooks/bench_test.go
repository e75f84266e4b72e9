package webhooks

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/shopcast/shopcast/packager"
)

// BenchmarkHookOnEvent is what a cue placement costs the packager's
// stream lock, with the writer storing what it can (sends that find the
// queue full take the drop path).
func BenchmarkHookOnEvent(b *testing.B) {
	s, err := New(Config{Path: filepath.Join(b.TempDir(), "w.db"), BackoffBase: time.Hour,
		Endpoints: []Endpoint{{URL: "http://127.0.0.1:9/", Secret: testSecret}}})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(s.Close)
	on := s.Hooks().OnStreamEnd
	se := packager.StreamEnd{Stream: "shop", Session: 1}
	b.ReportAllocs()
	for b.Loop() {
		on(se)
	}
	b.ReportMetric(float64(s.Stats().Dropped)/float64(b.N), "dropped/op")
}
