package audience

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// BenchmarkHeartbeat is one heartbeat POST through the handler, without
// the network: the audience's own share of a signal's cost.
func BenchmarkHeartbeat(b *testing.B) {
	a := &Audience{Streams: fakeStreams{"shop": true}, AddressRate: 1e9, ViewerRate: 1e9}
	mux := http.NewServeMux()
	a.Register(mux.Handle)
	ids := make([]string, 5000)
	for i := range ids {
		ids[i] = `{"viewer":"` + viewerID(i) + `","kind":"heartbeat"}`
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		r := httptest.NewRequest(http.MethodPost, "/api/v1/streams/shop/signals", strings.NewReader(ids[i%len(ids)]))
		r.RemoteAddr = "192.0.2.1:4000"
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		if w.Code != http.StatusAccepted {
			b.Fatal(w.Code, w.Body)
		}
	}
}
