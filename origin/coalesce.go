package origin

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"sync"
)

// net/http buffers a response's header with the start of its body in a
// 4 KiB writer and flushes that before writing the rest of a large body
// straight to the connection: every part a viewer fetches left in two
// writes, and each write on TCP pays its own transmit (on loopback also the
// receiver's softirq) whatever its size. The cleartext listener's
// connections can instead keep that first small write and send it with the
// next in one writev, when the handler says the next writes are one
// response's header and its large body.

// coalesceMin is the smallest body worth holding the header for: above
// 8 KiB net/http always writes the rest of the body directly after the
// flush of its 4 KiB buffer, so the held write is followed by another.
const coalesceMin = 8 << 10

// heldMax is the size of net/http's connection write buffer: the largest
// write a connection holds.
const heldMax = 4 << 10

// coalescingListener wraps the accepted TCP connections of the cleartext
// listener in coalescingConns.
type coalescingListener struct {
	net.Listener
	bufs sync.Pool // *[heldMax]byte, lent to a connection while it holds a write
}

func (l *coalescingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c, nil
	}
	return &coalescingConn{TCPConn: tc, bufs: &l.bufs}, nil
}

// coalescingConn is a TCP connection that can hold one small write and send
// it together with the following write, and that reads an HTTP/2
// connection through a buffer (see Read). Only the goroutine serving an
// HTTP/1.x connection writes it (and calls holdNext and release), so its
// fields need no lock; on HTTP/2 connections nothing is ever held. The
// read fields are set by the first Read, before net/http starts any other
// reader of the connection.
type coalescingConn struct {
	*net.TCPConn
	bufs *sync.Pool

	hold bool           // hold the next write if it is small
	held *[heldMax]byte // a held write's bytes, from bufs
	n    int            // length of the held write

	read bool          // the first Read happened
	br   *bufio.Reader // reads of an HTTP/2 connection, after its preface
}

// h2cPreface starts the client preface of HTTP/2 with prior knowledge.
var h2cPreface = []byte("PRI * HTTP/2.0")

// h2cReadBuffer is the read buffer of an HTTP/2 connection.
const h2cReadBuffer = 16 << 10

// Read reads the connection. Once it has seen the HTTP/2 preface it reads
// through a buffer: net/http's HTTP/2 server reads each frame's 9-byte
// header and then its payload straight from the connection, two syscalls
// for every frame (most of them the client's WINDOW_UPDATEs). net/http
// reads the preface itself with a limit, so that what follows it is left
// to this connection's reads. HTTP/1.x connections keep reading unbuffered
// into net/http's own buffer.
func (c *coalescingConn) Read(p []byte) (int, error) {
	if c.br != nil {
		return c.br.Read(p)
	}
	n, err := c.TCPConn.Read(p)
	if !c.read {
		c.read = true
		if bytes.HasPrefix(p[:n], h2cPreface) {
			c.br = bufio.NewReaderSize(c.TCPConn, h2cReadBuffer)
		}
	}
	return n, err
}

// WriteTo copies what the connection reads to w, buffered bytes first.
func (c *coalescingConn) WriteTo(w io.Writer) (int64, error) {
	if c.br != nil {
		return c.br.WriteTo(w)
	}
	return c.TCPConn.WriteTo(w)
}

// holdNext makes the connection keep its next write, when it is no larger
// than net/http's write buffer, until the write after it.
func (c *coalescingConn) holdNext() { c.hold = true }

// release sends a held write, if any, and ends holding. A handler calls it
// once its body is written, so no bytes stay behind whatever net/http did.
func (c *coalescingConn) release() error {
	c.hold = false
	_, err := c.flush(nil)
	return err
}

func (c *coalescingConn) Write(p []byte) (int, error) {
	if c.held != nil {
		return c.flush(p)
	}
	if c.hold && len(p) <= heldMax {
		c.hold = false
		buf, _ := c.bufs.Get().(*[heldMax]byte)
		if buf == nil {
			buf = new([heldMax]byte)
		}
		c.n = copy(buf[:], p)
		c.held = buf
		return len(p), nil
	}
	c.hold = false
	return c.TCPConn.Write(p)
}

// flush writes the held bytes followed by p in one writev and returns how
// much of p was written.
func (c *coalescingConn) flush(p []byte) (int, error) {
	if c.held == nil {
		if len(p) == 0 {
			return 0, nil
		}
		return c.TCPConn.Write(p)
	}
	held, n := c.held, c.n
	c.held = nil
	bufs := net.Buffers{held[:n], p}
	written, err := bufs.WriteTo(c.TCPConn)
	c.bufs.Put(held)
	return int(max(written-int64(n), 0)), err
}

// ReadFrom sends a held write first; net/http copies ranges of media
// through it (sendfile or splice where the source allows).
func (c *coalescingConn) ReadFrom(r io.Reader) (int64, error) {
	if err := c.release(); err != nil {
		return 0, err
	}
	return c.TCPConn.ReadFrom(r)
}

// connKey is the request context key of the request's coalescingConn.
type connKey struct{}

// withConn is the http.Server's ConnContext.
func withConn(ctx context.Context, c net.Conn) context.Context {
	if cc, ok := c.(*coalescingConn); ok {
		return context.WithValue(ctx, connKey{}, cc)
	}
	return ctx
}

// coalescer returns the request's connection when its next writes may be
// coalesced: HTTP/1.x on the cleartext listener, where the serving
// goroutine alone writes the connection (over HTTP/2 a frame writer
// goroutine does).
func coalescer(ctx context.Context, protoMajor int) *coalescingConn {
	if protoMajor != 1 {
		return nil
	}
	cc, _ := ctx.Value(connKey{}).(*coalescingConn)
	return cc
}
