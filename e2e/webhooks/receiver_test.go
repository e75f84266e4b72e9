// Package webhooks checks shopcast's webhooks end to end: a real RTMP
// publisher on a server (in the test process, or the shopcast binary run
// as a process and killed) whose events reach a receiver that verifies
// every signature with the Standard Webhooks Go library.
package webhooks

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/shopcast/shopcast/webhooks"
)

// fixture is 4 s of H.264 + AAC at 1 s GOPs.
const fixture = "../../testdata/h264_aac.flv"

// newSecret is a fresh "whsec_" secret of 32 random bytes.
func newSecret(t *testing.T) string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return "whsec_" + base64.StdEncoding.EncodeToString(b[:])
}

// attempt is one request the receiver got.
type attempt struct {
	id     string
	status int
	msg    webhooks.Message
}

// receiver is a shop's endpoint. It checks every request with the
// Standard Webhooks library (signature and timestamp tolerance) and
// answers what answer says.
type receiver struct {
	t   *testing.T
	url string
	wh  *standardwebhooks.Webhook

	mu       sync.Mutex
	answer   func(n int, a attempt) int // n counts requests from 0
	attempts []attempt
	bad      []string
}

func newReceiver(t *testing.T, secret string, answer func(n int, a attempt) int) *receiver {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{t: t, wh: wh, answer: answer}
	srv := httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(srv.Close)
	r.url = srv.URL + "/shop/hooks"
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil {
		err = r.wh.Verify(body, req.Header)
	}
	if err != nil {
		r.bad = append(r.bad, fmt.Sprintf("%s: %v", req.Header.Get("webhook-id"), err))
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	a := attempt{id: req.Header.Get("webhook-id")}
	if err := json.Unmarshal(body, &a.msg); err != nil {
		r.bad = append(r.bad, fmt.Sprintf("%s: body: %v", a.id, err))
	}
	a.status = http.StatusOK
	if r.answer != nil {
		a.status = r.answer(len(r.attempts), a)
	}
	r.attempts = append(r.attempts, a)
	w.WriteHeader(a.status)
}

func (r *receiver) setAnswer(f func(n int, a attempt) int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.answer = f
}

func (r *receiver) all() []attempt {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]attempt(nil), r.attempts...)
}

// delivered lists the attempts answered 2xx, in arrival order.
func (r *receiver) delivered() []attempt {
	var out []attempt
	for _, a := range r.all() {
		if a.status/100 == 2 {
			out = append(out, a)
		}
	}
	return out
}

func (r *receiver) has(typ string) bool {
	for _, a := range r.delivered() {
		if a.msg.Type == typ {
			return true
		}
	}
	return false
}

// check fails the test for any request whose signature did not verify,
// and for any event delivered twice: shopcast must not resend what was
// answered 2xx while it runs.
func (r *receiver) check() {
	r.t.Helper()
	r.mu.Lock()
	bad := append([]string(nil), r.bad...)
	r.mu.Unlock()
	for _, b := range bad {
		r.t.Errorf("receiver refused a request: %s", b)
	}
	seen := map[string]bool{}
	for _, a := range r.delivered() {
		if seen[a.id] {
			r.t.Errorf("%s (%s) delivered twice", a.id, a.msg.Type)
		}
		seen[a.id] = true
	}
}

func types(as []attempt) string {
	var out []string
	for _, a := range as {
		out = append(out, a.msg.Type)
	}
	return strings.Join(out, " ")
}

// waitFor polls cond until it holds or d has passed.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cueJSON is a product cue lasting durationMs, starting now.
func cueJSON(id string, durationMs int) string {
	return fmt.Sprintf(`{"v":1,"id":%q,"type":"product","product":{"sku":"MUG-1","title":"Studio mug",`+
		`"price":{"amount":"12.50","currency":"EUR"},"image_url":"https://cdn.example.com/mug.jpg",`+
		`"url":"https://shop.example.com/p/mug"},"at":"now","duration_ms":%d}`, id, durationMs)
}

func post(t *testing.T, url, body string) int {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metric reads one sample from a /metrics page: the value of the line
// that starts with series, -1 without one.
func metric(page, series string) float64 {
	for _, line := range strings.Split(page, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			var v float64
			if _, err := fmt.Sscan(rest, &v); err == nil {
				return v
			}
		}
	}
	return -1
}
