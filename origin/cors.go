package origin

import "net/http"

// setCORS lets players on other origins read stream files.
func (s *Server) setCORS(h http.Header) {
	h["Access-Control-Allow-Origin"] = s.hdr.value(or(s.CORSOrigin, defaultCORSOrigin))
	h["Access-Control-Expose-Headers"] = s.hdr.value("Content-Length, Content-Range, Age, Date")
}

// preflight answers a CORS preflight request (OPTIONS) with 204. No
// credentials are involved, so the requested headers are allowed as asked.
func preflight(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
	if rh := r.Header.Get("Access-Control-Request-Headers"); rh != "" {
		h.Set("Access-Control-Allow-Headers", rh)
	}
	h.Set("Access-Control-Max-Age", "86400")
	h.Set("Vary", "Access-Control-Request-Headers")
	h.Set("Cache-Control", cacheNoStore)
	w.WriteHeader(http.StatusNoContent)
}
