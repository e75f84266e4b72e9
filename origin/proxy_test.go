package origin

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/shopcast/shopcast/packager"
)

// fakeForwarder answers the streams it owns elsewhere and records what it
// was asked.
type fakeForwarder struct {
	elsewhere map[string]bool
	asked     []string
}

func (f *fakeForwarder) Forward(w http.ResponseWriter, r *http.Request, name string) bool {
	f.asked = append(f.asked, name)
	if !f.elsewhere[name] {
		return false
	}
	w.WriteHeader(http.StatusTeapot)
	return true
}

func TestForwarder(t *testing.T) {
	fw := &fakeForwarder{elsewhere: map[string]bool{"remote": true}}
	s := &Server{Source: &fakeSource{resp: playlistResponse(packager.KindPlaylist)}, Forwarder: fw}
	h := s.Handler()
	tests := []struct {
		path  string
		asked string // "" when the Forwarder must not be asked
		code  int
	}{
		{"/live/remote/stream.m3u8", "remote", http.StatusTeapot},
		{"/recordings/remote/r1/index.m3u8", "remote", http.StatusTeapot},
		{"/live/local/stream.m3u8", "local", http.StatusOK},
		{"/live/../etc/passwd", "", 0},
		{"/api/v1/streams/remote/cues", "", 0},
		{"/healthz", "", http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			fw.asked = nil
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tt.path, nil))
			switch {
			case tt.asked == "" && len(fw.asked) > 0:
				t.Errorf("the Forwarder was asked about %v", fw.asked)
			case tt.asked != "" && (len(fw.asked) != 1 || fw.asked[0] != tt.asked):
				t.Errorf("asked %v, want %s", fw.asked, tt.asked)
			}
			if tt.code != 0 && rec.Code != tt.code {
				t.Errorf("%d, want %d", rec.Code, tt.code)
			}
		})
	}
}
