package steering

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// ManifestFile is the steering manifest's file name under /live/{name}/.
const ManifestFile = "steering.json"

// Manifest is a steering manifest (Apple's HLS Content Steering
// Specification, "Steering Manifest"): VERSION 1 and PATHWAY-PRIORITY are
// required, TTL is the reload interval in seconds, and RELOAD-URI, when
// present, is where the next reload goes.
type Manifest struct {
	Version         int      `json:"VERSION"`
	TTL             int      `json:"TTL"`
	ReloadURI       string   `json:"RELOAD-URI,omitempty"`
	PathwayPriority []string `json:"PATHWAY-PRIORITY"`
}

// Manifest returns a stream's steering manifest for a player on pathway
// current ("" when it did not say). RELOAD-URI is absolute and names a
// healthy pathway other than the player's own when there is one: a
// relative one would resolve against the manifest's URL, on the host that
// served the multivariant playlist, and the host the player streams from
// is the one whose death the next reload must report. Spreading the two
// over different hosts keeps the steering server reachable when the
// player's origin dies.
func (s *Steering) Manifest(stream, current string) Manifest {
	prio := s.Priority()
	ids := make([]string, len(prio))
	for i, p := range prio {
		ids[i] = p.ID
	}
	reload := prio[0]
	for _, p := range prio {
		if p.ID != current && s.healthy(p) {
			reload = p
			break
		}
	}
	return Manifest{
		Version:         1,
		TTL:             int(s.cfg.TTL.Seconds()),
		ReloadURI:       manifestURL(reload, stream),
		PathwayPriority: ids,
	}
}

// ServeHTTP answers /live/{name}/steering.json (the name in
// r.PathValue("name")). The query parameters the player adds are
// checked: _HLS_pathway must be a legal Pathway ID and _HLS_throughput a
// whole number of bits per second; anything else is a 400 naming the
// parameter.
//
// The answer is private and not stored (docs/cdn.md, "Steering"): a
// shared cache would add its max-age to the time a dead origin stays
// first in PATHWAY-PRIORITY, and each player asks once per TTL for a few
// bytes made from memory.
func (s *Steering) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", s.cfg.CORSOrigin)
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodOptions:
		h.Set("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
		h.Set("Access-Control-Max-Age", "86400")
		w.WriteHeader(http.StatusNoContent)
		return
	default:
		h.Set("Allow", "GET, HEAD, OPTIONS")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	q := r.URL.Query()
	current := q.Get("_HLS_pathway")
	if current != "" {
		if err := checkID(current); err != nil {
			http.Error(w, "_HLS_pathway: "+err.Error(), http.StatusBadRequest)
			return
		}
	}
	if t := q.Get("_HLS_throughput"); t != "" {
		if n, err := strconv.ParseUint(t, 10, 63); err != nil || n == 0 && t != "0" {
			http.Error(w, "_HLS_throughput: want a whole number of bits per second", http.StatusBadRequest)
			return
		}
	}
	b, err := json.Marshal(s.Manifest(r.PathValue("name"), current))
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	b = append(b, '\n')
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "private, no-store")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(b)
	}
}
