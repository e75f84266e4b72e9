// Package audience checks the participation loop from the outside: viewer
// signals and the pulse through Debian's chromium on the real watch page
// and studio, a real ffmpeg publishing over RTMP, and the pulse through a
// real Varnish edge running deploy/varnish/shopcast.vcl.
package audience

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/shopcast/shopcast/internal/e2etest"
	"github.com/shopcast/shopcast/internal/server"
)

// startLive starts shopcast with edit applied to its config, has ffmpeg
// publish stream name for seconds, and waits for its playlist.
func startLive(t *testing.T, name string, seconds int, edit func(*server.Config)) *e2etest.Server {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end")
	}
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Fatalf("ffmpeg is required (make deps installs it): %v", err)
	}
	cfg := e2etest.Config(t)
	if edit != nil {
		edit(&cfg)
	}
	srv := e2etest.Start(t, cfg)
	e2etest.FFmpegOBS(t, srv.RTMP+"/live/"+name, seconds)
	e2etest.WaitUntil(t, 20*time.Second, "the stream to be live", func() bool {
		return srv.Server.Packager().HasStream(name)
	})
	return srv
}

// answer is one HTTP answer.
type answer struct {
	status int
	body   string
	header http.Header
}

func do(t *testing.T, method, url, body string, hdr map[string]string) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return answer{status: resp.StatusCode, body: string(b), header: resp.Header}
}

// signal posts one viewer's signal body to stream's signals endpoint.
func signal(t *testing.T, srv *e2etest.Server, stream, query, body string) answer {
	t.Helper()
	return do(t, http.MethodPost, srv.HTTP+"/api/v1/streams/"+stream+"/signals"+query, body, map[string]string{"Content-Type": "application/json"})
}

// studioView is the studio's audience view.
type studioView struct {
	Viewers            int64 `json:"viewers"`
	ReactionsPerMinute int64 `json:"reactions_per_minute"`
	Polls              []struct {
		ID     string  `json:"id"`
		Open   bool    `json:"open"`
		Counts []int64 `json:"counts"`
		Votes  int64   `json:"votes"`
	} `json:"polls"`
	Products []struct {
		Cue         string `json:"cue"`
		Impressions int64  `json:"impressions"`
		Clicks      int64  `json:"clicks"`
	} `json:"products"`
}

func studio(t *testing.T, srv *e2etest.Server, stream string) studioView {
	t.Helper()
	a := do(t, http.MethodGet, srv.HTTP+"/api/v1/streams/"+stream+"/audience", "", nil)
	if a.status != http.StatusOK {
		t.Fatalf("studio view: %d %s", a.status, a.body)
	}
	var v studioView
	if err := json.Unmarshal([]byte(a.body), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// postCue posts a cue to the cue API and returns the answer.
func postCue(t *testing.T, srv *e2etest.Server, stream, cue string) answer {
	t.Helper()
	return do(t, http.MethodPost, srv.HTTP+"/api/v1/streams/"+stream+"/cues", cue, map[string]string{"Content-Type": "application/json"})
}

// openPoll posts a poll cue of two options open for a minute. Poll cues
// come with the cue types of the participation loop; a cue API that does
// not know them yet refuses the type, and the test skips what needs one.
func openPoll(t *testing.T, srv *e2etest.Server, stream, id string) bool {
	t.Helper()
	a := postCue(t, srv, stream, `{"v":1,"id":"`+id+`","type":"poll","poll":{"question":"Which colour?","options":["Red","Blue"]},"duration_ms":60000}`)
	if a.status == http.StatusCreated {
		return true
	}
	if a.status == http.StatusBadRequest && (strings.Contains(a.body, `"field":"type"`) || strings.Contains(a.body, `"field":"poll"`)) {
		return false
	}
	t.Fatalf("poll cue: %d %s", a.status, a.body)
	return false
}

// viewer is a signal body's viewer field.
func viewer(i int) string { return fmt.Sprintf("e2e-viewer-%08d", i) }

func body(v, rest string) string { return `{"viewer":"` + v + `",` + rest + `}` }

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(bytes.ReplaceAll(b, []byte("\u2028"), []byte(`\u2028`)))
}
