package origin

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"

	"github.com/shopcast/shopcast/internal/hlsname"
	"github.com/shopcast/shopcast/packager"
)

// Source answers requests for stream files. The packager's Manager
// implements it. Fetch blocks while a blocking playlist request or a
// preload-hinted part waits, and returns packager.ErrNotFound,
// ErrBadRequest or ErrUnavailable for the 404, 400 and 503 answers. A
// Response carries its ContentType: the origin sends it as is.
type Source interface {
	Fetch(ctx context.Context, req packager.Request) (*packager.Response, error)
}

// serveLive answers GET, HEAD and OPTIONS on /live/{name}/{file}.
func (s *Server) serveLive(w http.ResponseWriter, r *http.Request) {
	// fetchLive's frame, on the stack while a request blocks, is gone
	// before writeLive makes net/http serialize the header (see Handler).
	if file, resp := s.fetchLive(w, r); resp != nil {
		s.writeLive(w, r, file, resp)
	}
}

// fetchLive checks the request and fetches the file. It returns a nil
// response when it has answered the request itself (an error, a preflight).
func (s *Server) fetchLive(w http.ResponseWriter, r *http.Request) (string, *packager.Response) {
	h := w.Header()
	s.setCORS(h)
	escaped, grant := r.URL.EscapedPath(), playGrant{}
	if s.PlayAuth != nil {
		var ok bool
		if escaped, grant, ok = s.PlayAuth.authorize(w, r); !ok {
			return "", nil // answered 403
		}
	}
	name, file, ok := parseLivePath(escaped)
	if !ok {
		fail(w, http.StatusNotFound)
		return "", nil
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodOptions:
		preflight(w, r)
		return "", nil
	default:
		h.Set("Allow", "GET, HEAD, OPTIONS")
		fail(w, http.StatusMethodNotAllowed)
		return "", nil
	}
	if file == hlsname.Poster {
		s.servePoster(w, r, name)
		return "", nil
	}

	req := packager.Request{Stream: name, File: file, MSN: -1, Part: -1, Gzip: acceptsGzip(r.Header), Client: clientAddr(r)}
	// The delivery directives apply to media playlists only; on other files
	// they are ignored like any other query parameter.
	if n, err := hlsname.Parse(file); err == nil && n.Kind == hlsname.KindMedia {
		if err := parseDirectives(r.URL.RawQuery, &req); err != nil {
			fail(w, http.StatusBadRequest)
			return "", nil
		}
	}

	resp, err := s.Source.Fetch(r.Context(), req)
	if err != nil {
		if r.Context().Err() != nil {
			return "", nil // the client went away: nobody to answer
		}
		status := statusOf(err)
		if status == http.StatusInternalServerError {
			s.log().Error("fetch", "stream", name, "file", file, "remote", r.RemoteAddr, "err", err)
		}
		fail(w, status)
		return "", nil
	}

	resp = grant.apply(resp)
	if s.RewriteMultivariant != nil && resp.Kind == packager.KindMultivariant {
		out := *resp // shared by every viewer: rewrite a copy
		out.Body, out.Gzip = s.RewriteMultivariant(name, r.URL.EscapedPath(), resp.Body), nil
		resp = &out
	}
	return file, resp
}

// writeLive sends a fetched stream file.
// Header values are set by canonical key, from s.hdr (see headerCache).
func (s *Server) writeLive(w http.ResponseWriter, r *http.Request, file string, resp *packager.Response) {
	h := w.Header()
	h["Content-Type"] = s.hdr.value(resp.ContentType)
	h["Cache-Control"] = s.hdr.maxAge(maxAge(resp))

	if isPlaylist(resp.Kind) {
		// Playlists change within a second, faster than Last-Modified can
		// tell, so they are always sent whole, never as 304 or a range.
		h["Vary"] = s.hdr.value("Accept-Encoding")
		body := resp.Body
		if resp.Gzip != nil && acceptsGzip(r.Header) {
			body = resp.Gzip
			h["Content-Encoding"] = s.hdr.value("gzip")
		}
		h.Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			writeBody(w, r, body)
		}
		return
	}

	// Media files are immutable. A plain GET (what players and CDNs send)
	// writes the shared buffer directly: going through ServeContent's
	// io.Copy would hold two 32 KiB copy buffers per slow reader.
	if r.Header.Get("Range") == "" && r.Header.Get("If-Modified-Since") == "" &&
		r.Header.Get("If-None-Match") == "" && r.Header.Get("If-Range") == "" {
		h["Accept-Ranges"] = s.hdr.value("bytes")
		h.Set("Content-Length", strconv.Itoa(len(resp.Body)))
		if !resp.ModTime.IsZero() {
			h["Last-Modified"] = s.hdr.lastModified(resp.ModTime)
		}
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			writeBody(w, r, resp.Body)
		}
		return
	}
	// Ranges and conditional requests: ServeContent over the shared buffer.
	http.ServeContent(w, r, file, resp.ModTime, bytes.NewReader(resp.Body))
}

// writeBody writes a response's body, sending a large one in the same write
// as the header where the connection can (see coalescingConn).
func writeBody(w http.ResponseWriter, r *http.Request, body []byte) {
	if len(body) >= coalesceMin {
		if cc := coalescer(r.Context(), r.ProtoMajor); cc != nil {
			cc.holdNext()
			_, _ = w.Write(body)
			_ = cc.release()
			return
		}
	}
	_, _ = w.Write(body)
}

// statusOf maps a Fetch error to an HTTP status.
func statusOf(err error) int {
	switch {
	case errors.Is(err, packager.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, packager.ErrBadRequest):
		return http.StatusBadRequest
	case errors.Is(err, packager.ErrUnavailable),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// fail answers with an error status and its Cache-Control.
func fail(w http.ResponseWriter, status int) {
	cc := cacheNoStore
	if status == http.StatusNotFound {
		cc = cacheNotFound
	}
	w.Header().Set("Cache-Control", cc)
	http.Error(w, http.StatusText(status), status)
}

// clientAddr is the peer's IP address, which the packager's per-client cap
// on blocked requests counts by. Forwarding headers are not read: anyone
// can write them, and a flood would then spread itself over made-up
// clients. Behind a CDN the edge is the client, as it should be: it
// collapses its viewers' requests.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
