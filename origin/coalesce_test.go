package origin

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopcast/shopcast/packager"
)

// pattern returns n bytes that differ from any shifted copy of themselves,
// so a lost, doubled or reordered write shows.
func pattern(n, seed int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte((i*7 + i/251 + seed) % 256)
	}
	return b
}

// coalescingPair returns a coalescingConn accepted by a coalescingListener
// and the client end of the connection.
func coalescingPair(t *testing.T) (*coalescingConn, net.Conn) {
	t.Helper()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &coalescingListener{Listener: inner}
	t.Cleanup(func() { _ = ln.Close() })
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	cc, ok := c.(*coalescingConn)
	if !ok {
		t.Fatalf("accepted %T, want *coalescingConn", c)
	}
	return cc, client
}

func TestCoalescingConn(t *testing.T) {
	for _, tc := range []struct {
		name   string
		hold   bool
		writes []int
		// held[i]: whether bytes are held back after write i.
		held []bool
	}{
		{"header and body", true, []int{4096, 110_000}, []bool{true, false}},
		{"small write held until release", true, []int{300}, []bool{true}},
		{"write past the buffer not held", true, []int{4097, 10}, []bool{false, false}},
		{"only the next write is held", true, []int{100, 200, 300}, []bool{true, false, false}},
		{"no hold", false, []int{100, 200}, []bool{false, false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cc, client := coalescingPair(t)
			var want []byte
			if tc.hold {
				cc.holdNext()
			}
			for i, n := range tc.writes {
				p := pattern(n, i)
				want = append(want, p...)
				got, err := cc.Write(p)
				if err != nil || got != n {
					t.Fatalf("write %d: %d, %v; want %d", i, got, err, n)
				}
				if held := cc.held != nil; held != tc.held[i] {
					t.Fatalf("after write %d: held %v, want %v", i, held, tc.held[i])
				}
			}
			if err := cc.release(); err != nil {
				t.Fatal(err)
			}
			if cc.held != nil || cc.hold {
				t.Fatal("release left the connection holding")
			}
			got := make([]byte, len(want))
			_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.ReadFull(client, got); err != nil {
				t.Fatalf("read %d bytes: %v", len(want), err)
			}
			if !bytes.Equal(got, want) {
				t.Fatal("bytes arrived changed or out of order")
			}
		})
	}
}

// TestCoalescedResponses fetches bodies around net/http's buffer sizes
// from a started Server, pipelined on one keep-alive connection with HEAD
// and range requests between them, and over h2c.
func TestCoalescedResponses(t *testing.T) {
	sizes := []int{0, 1, 2047, 4095, 4096, 8191, 8192, 8193, 12_000, 110_000, 700_000}
	bodies := map[string][]byte{}
	for i, n := range sizes {
		bodies[fmt.Sprintf("part%d.m4s", i)] = pattern(n, i)
	}
	bodies["stream.m3u8"] = pattern(20_000, 99) // a large playlist is held too
	s := &Server{Address: "127.0.0.1:0", Source: sourceFunc(
		func(ctx context.Context, req packager.Request) (*packager.Response, error) {
			b, ok := bodies[req.File]
			if !ok {
				return nil, packager.ErrNotFound
			}
			kind, ctype := packager.KindPart, "video/mp4"
			if strings.HasSuffix(req.File, ".m3u8") {
				kind, ctype = packager.KindPlaylist, "application/vnd.apple.mpegurl"
			}
			return &packager.Response{Kind: kind, ContentType: ctype, Body: b, TargetDuration: 2 * time.Second}, nil
		})}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	addr := s.Addr().String()

	type exchange struct {
		req    string
		status int
		body   []byte
	}
	var ex []exchange
	for i := range sizes {
		file := fmt.Sprintf("part%d.m4s", i)
		b := bodies[file]
		get := "GET /live/shop/" + file + " HTTP/1.1\r\nHost: t\r\n\r\n"
		ex = append(ex,
			exchange{get, 200, b},
			exchange{"HEAD /live/shop/" + file + " HTTP/1.1\r\nHost: t\r\n\r\n", 200, nil})
		if len(b) > 10 {
			ex = append(ex, exchange{"GET /live/shop/" + file + " HTTP/1.1\r\nHost: t\r\nRange: bytes=3-9\r\n\r\n", 206, b[3:10]})
		}
		ex = append(ex, exchange{get, 200, b})
	}
	ex = append(ex, exchange{"GET /live/shop/stream.m3u8 HTTP/1.1\r\nHost: t\r\n\r\n", 200, bodies["stream.m3u8"]})

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	var all strings.Builder
	for _, e := range ex {
		all.WriteString(e.req)
	}
	// Written from another goroutine: the responses can fill the socket
	// buffers before all requests are sent.
	go func() { _, _ = io.WriteString(c, all.String()) }()
	br := bufio.NewReader(c)
	for i, e := range ex {
		req, _, _ := strings.Cut(e.req, "\r\n")
		resp, err := http.ReadResponse(br, &http.Request{Method: strings.Fields(req)[0]})
		if err != nil {
			t.Fatalf("%d %s: %v", i, req, err)
		}
		got, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil || resp.StatusCode != e.status || !bytes.Equal(got, e.body) {
			t.Fatalf("%d %s: status %d (want %d), %d bytes (want %d, equal %v), err %v",
				i, req, resp.StatusCode, e.status, len(got), len(e.body), bytes.Equal(got, e.body), err)
		}
	}

	// HTTP/2 connections are written by net/http's frame writer: never held.
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	h2 := &http.Client{Transport: &http.Transport{Protocols: &protos, TLSClientConfig: &tls.Config{}}}
	defer h2.CloseIdleConnections()
	// Many streams at once on one connection, whose reads are buffered.
	var wg sync.WaitGroup
	errs := make(chan error, 3*len(sizes))
	for range 3 {
		for i := range sizes {
			wg.Go(func() {
				file := fmt.Sprintf("part%d.m4s", i)
				resp, err := h2.Get("http://" + addr + "/live/shop/" + file)
				if err != nil {
					errs <- err
					return
				}
				got, err := io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				if err != nil || resp.ProtoMajor != 2 || !bytes.Equal(got, bodies[file]) {
					errs <- fmt.Errorf("h2c %s: proto %s, %d bytes (want %d), err %v", file, resp.Proto, len(got), len(bodies[file]), err)
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestCoalescingConnH2CReads: after the HTTP/2 preface a connection reads
// through a buffer, handing out the bytes in order however small the
// reads; an HTTP/1.1 connection does not.
func TestCoalescingConnH2CReads(t *testing.T) {
	for _, tc := range []struct {
		name     string
		first    string
		buffered bool
	}{
		{"h2c", "PRI * HTTP/2.0", true},
		{"HTTP/1.1", "GET / HTTP/1.1\r\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cc, client := coalescingPair(t)
			rest := pattern(50_000, 3)
			go func() { _, _ = client.Write(append([]byte(tc.first), rest...)) }()
			_ = cc.SetReadDeadline(time.Now().Add(5 * time.Second))
			first := make([]byte, len(tc.first))
			if _, err := io.ReadFull(cc, first); err != nil || string(first) != tc.first {
				t.Fatalf("first read %q, %v", first, err)
			}
			if (cc.br != nil) != tc.buffered {
				t.Fatalf("buffered %v, want %v", cc.br != nil, tc.buffered)
			}
			var got []byte
			buf := make([]byte, 9)
			for len(got) < len(rest) {
				n, err := cc.Read(buf[:min(9, len(rest)-len(got))])
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, buf[:n]...)
			}
			if !bytes.Equal(got, rest) {
				t.Fatal("bytes after the preface changed")
			}
		})
	}
}
