package origin

import (
	"bytes"
	"net/http"
	"time"
)

// Posters gives the latest picture of each live stream as a JPEG; package
// ladder implements it. The bytes are shared and never modified.
type Posters interface {
	PosterJPEG(stream string) (jpeg []byte, made time.Time, ok bool)
}

// defaultPosterMaxAge is Server.PosterMaxAge's default.
const defaultPosterMaxAge = 5 * time.Second

// servePoster answers GET and HEAD on /live/{name}/poster.jpg: the latest
// picture, cached briefly (a new one comes every few seconds), with
// Last-Modified so that a revalidation costs no body; 404 until the first
// poster is made.
func (s *Server) servePoster(w http.ResponseWriter, r *http.Request, name string) {
	var (
		body []byte
		made time.Time
		ok   bool
	)
	if s.Posters != nil {
		body, made, ok = s.Posters.PosterJPEG(name)
	}
	if !ok {
		fail(w, http.StatusNotFound)
		return
	}
	age := s.PosterMaxAge
	if age <= 0 {
		age = defaultPosterMaxAge
	}
	h := w.Header()
	h["Content-Type"] = s.hdr.value("image/jpeg")
	h["Cache-Control"] = s.hdr.maxAge(seconds(age))
	http.ServeContent(w, r, "poster.jpg", made, bytes.NewReader(body))
}
