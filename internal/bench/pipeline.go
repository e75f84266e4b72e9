package bench

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

// pipeliner is a fetcher that can send a blocking playlist reload and the
// GET of the part it waits for in one write (HTTP/1.1 pipelining, RFC 9112
// section 9.3.2). It reads the playlist into *plBuf and returns the part's
// size; the part's bytes are not kept.
type pipeliner interface {
	fetcher
	fetchPair(ctx context.Context, plURL string, plBuf *[]byte, partURL string) (int64, error)
}

// pipeFetcher is one viewer's own HTTP/1.1 keep-alive connection. RFC
// 8216bis 6.2.5.2 and Apple's LL-HLS guidance have a client request the
// preload-hinted part together with the blocking playlist reload for it;
// over one HTTP/1.1 connection that is two pipelined GETs. The origin
// answers them in order: the playlist once the part exists, then the part.
// Responses are parsed by fasthttp; the requests are two lines of text.
type pipeFetcher struct {
	prefix string // "http://host:port"
	host   string
	conn   net.Conn
	br     *bufio.Reader
	req    []byte
	resp   fasthttp.Response
}

// newPipeFetcher returns a pipeFetcher for URLs under base (http only).
func newPipeFetcher(base string) (*pipeFetcher, error) {
	rest, ok := strings.CutPrefix(base, "http://")
	if !ok {
		return nil, fmt.Errorf("pipelined viewer: %q is not an http:// URL", base)
	}
	host, _, _ := strings.Cut(rest, "/")
	return &pipeFetcher{prefix: "http://" + host, host: host}, nil
}

func (f *pipeFetcher) fetch(ctx context.Context, url string, buf *[]byte) (int64, error) {
	sizes, err := f.do(ctx, []string{url}, buf)
	return sizes[0], err
}

func (f *pipeFetcher) fetchPair(ctx context.Context, plURL string, plBuf *[]byte, partURL string) (int64, error) {
	sizes, err := f.do(ctx, []string{plURL, partURL}, plBuf)
	return sizes[1], err
}

// do sends GETs of urls in one write and reads their responses in order:
// the first body into *buf0 (if not nil), the others only counted.
func (f *pipeFetcher) do(ctx context.Context, urls []string, buf0 *[]byte) ([2]int64, error) {
	var sizes [2]int64
	if len(urls) > len(sizes) {
		return sizes, fmt.Errorf("pipelined viewer: %d requests", len(urls))
	}
	if f.conn == nil {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", f.host)
		if err != nil {
			return sizes, fmt.Errorf("dial %s: %w", f.host, err)
		}
		f.conn, f.br = c, bufio.NewReaderSize(c, 4<<10)
	}
	f.req = f.req[:0]
	for _, u := range urls {
		path, ok := strings.CutPrefix(u, f.prefix)
		if !ok {
			return sizes, fmt.Errorf("pipelined viewer: %q is not under %s", u, f.prefix)
		}
		f.req = fmt.Appendf(f.req, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, f.host)
	}
	deadline := time.Now().Add(time.Minute)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = f.conn.SetDeadline(deadline)
	// A cancelled ctx ends a request blocked in the origin.
	stop := context.AfterFunc(ctx, func() { _ = f.conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := f.conn.Write(f.req); err != nil {
		return sizes, f.broken(fmt.Errorf("GET %s: %w", urls[0], err))
	}
	for i, u := range urls {
		f.resp.Reset()
		if err := f.resp.Read(f.br); err != nil {
			return sizes, f.broken(fmt.Errorf("GET %s: %w", u, err))
		}
		body := f.resp.Body()
		sizes[i] = int64(len(body))
		if i == 0 && buf0 != nil {
			*buf0 = append((*buf0)[:0], body...)
		}
		if f.resp.StatusCode() != http.StatusOK {
			// The rest of the pipeline may still be in flight: start over
			// on a new connection.
			return sizes, f.broken(fmt.Errorf("%w %d for %s", errStatus, f.resp.StatusCode(), u))
		}
	}
	if f.resp.ConnectionClose() {
		_ = f.broken(nil)
	}
	return sizes, nil
}

// broken closes the connection (the next request dials anew) and returns
// err.
func (f *pipeFetcher) broken(err error) error {
	if f.conn != nil {
		_ = f.conn.Close()
		f.conn, f.br = nil, nil
	}
	return err
}
