package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortmplib"
	"github.com/bluenviron/gortmplib/pkg/amf0"
	"github.com/bluenviron/gortmplib/pkg/message"
)

// errPlayRefused ends connections that ask to play: shopcast serves viewers
// over HLS only.
var errPlayRefused = errors.New("play refused: viewers are served over HLS only")

// rtmpConn is one TCP connection to the RTMP server.
type rtmpConn struct {
	s      *RTMPServer
	nc     net.Conn
	remote string
	log    *slog.Logger

	// done is closed when the connection has ended and its publication is
	// closed.
	done chan struct{}
	// kicked is set when a newer publisher of the same name replaced this one.
	kicked atomic.Bool
	// published is set once the Sink accepted the publication.
	published bool
	// lastRead is when the last bytes arrived (Unix ns): the Registry lets
	// another publisher replace a session that stays silent.
	lastRead atomic.Int64

	// Set once the publication starts; used by the Reader's callbacks, which
	// run in the connection's goroutine.
	pub      Publication
	writeErr error
	// walls date each track's units by their arrival (Unit.Wall), from
	// what the probe saw of the analysed media on.
	walls map[*Track]*wallClock
	probe *rtmpProbe
	// variants are the multitrack connection's other video tracks, each
	// its own publication (rtmp_tracks.go).
	variants []*rtmpVariant
}

func newRTMPConn(s *RTMPServer, nc net.Conn) *rtmpConn {
	remote := nc.RemoteAddr().String()
	c := &rtmpConn{
		s:      s,
		nc:     nc,
		remote: remote,
		log:    s.log.With("proto", "rtmp", "remote", remote),
		done:   make(chan struct{}),
	}
	c.lastRead.Store(time.Now().UnixNano())
	return c
}

func (c *rtmpConn) lastActive() time.Time { return time.Unix(0, c.lastRead.Load()) }

// run serves the connection until it ends, and logs why it ended.
func (c *rtmpConn) run() {
	defer close(c.done)

	err := c.serve()

	var ref *refusal
	switch {
	case errors.As(err, &ref):
		c.log.Warn("publish refused", append([]any{"err", ref.err}, ref.attrs...)...)
	case errors.Is(err, errPlayRefused):
		c.log.Warn("play refused: viewers are served over HLS only")
	case c.kicked.Load():
		c.log.Info("publisher replaced: old connection closed")
	case c.s.isClosing():
		c.log.Info("connection closed: server shutting down")
	case errors.Is(err, os.ErrDeadlineExceeded):
		c.log.Warn("connection closed: no data", "timeout", c.s.readTimeout, "err", err)
	case !c.published:
		c.log.Warn("connection closed before publishing", "err", err)
	case errors.Is(err, io.EOF):
		c.log.Info("publisher disconnected")
	default:
		c.log.Warn("publisher connection closed", "err", err)
	}
}

// serve runs the RTMP session. A panic inside (gortmplib, codec parsing, the
// Sink) ends this connection only.
func (c *rtmpConn) serve() (err error) {
	defer func() {
		if p := recover(); p != nil {
			c.log.Error("panic in rtmp connection", "err", fmt.Sprint(p), "stack", string(debug.Stack()))
			err = fmt.Errorf("panic: %v", p)
		}
	}()

	sc := &gortmplib.ServerConn{RW: &deadlineConn{
		Conn:    c.nc,
		timeout: c.s.readTimeout,
		guard:   newRTMPGuard(c.s.maxAMF),
		active:  &c.lastRead,
	}}

	// Handshake and connect command.
	if err := sc.Initialize(); err != nil {
		return fmt.Errorf("handshake or connect: %w", c.redact(err))
	}
	// createStream, then publish or play.
	if err := sc.AcceptConn(); err != nil {
		return fmt.Errorf("publish command: %w", c.redact(err))
	}

	if !sc.Publish {
		c.refuse(sc, "NetStream.Play.Failed", "this server serves viewers over HLS, not RTMP")
		return errPlayRefused
	}

	name, key, err := c.resolveName(sc)
	if err != nil {
		return err
	}
	c.log = c.log.With("stream", name)

	// Before NetStream.Publish.Start, so that a publisher refused here is
	// told so by the answer to its publish command. A replaced session ends
	// here, before this one probes its tracks: it is dead or the same
	// encoder, so nothing is lost.
	pubKey := ""
	if c.s.auth.Enabled {
		pubKey = key
	}
	release, err := c.s.registry.Admit(context.Background(), name, Publisher{
		Proto: "rtmp", Remote: c.remote, Key: pubKey, LastActive: c.lastActive, Kick: c.kick,
	})
	if err != nil {
		// The error names the holder's address: for the log only.
		c.refuse(sc, "NetStream.Publish.BadName", ErrNameInUse.Error())
		return &refusal{err: err}
	}
	defer release()

	// NetStream.Publish.Start: the encoder starts sending media.
	if err := sc.AcceptAction(); err != nil {
		return err
	}

	// The Reader reads the first 2s of media to find the tracks (less when
	// the probe's fastStart ends it), then replays them. rtmpProbe keeps the
	// AV1/VP9 parameters it leaves out.
	// Under everything that reads timestamps, so that all of it sees them
	// unwrapped.
	probe := &rtmpProbe{Conn: &rtmpUnwrap{Conn: sc}}
	r := &gortmplib.Reader{Conn: probe}
	if err := r.Initialize(); err != nil {
		return fmt.Errorf("reading tracks: %w", err)
	}
	probe.stopped = true
	c.probe = probe

	tracks, variants, err := c.setupTracks(r, probe)
	if err != nil {
		return &refusal{err: err}
	}

	pub, err := c.s.Sink.Publish(PublishInfo{Name: name, Proto: "rtmp", Remote: c.remote, Tracks: tracks})
	if err != nil {
		return fmt.Errorf("sink refused publication: %w", err)
	}
	// The source closes first: it publishes its last part and segment,
	// and the variants following it then publish theirs (their own Close
	// after that has nothing left to do).
	defer func() {
		pub.Close()
		for _, v := range c.variants {
			if v.pub != nil {
				v.pub.Close()
			}
		}
	}()
	c.pub = pub
	c.published = true

	c.log.Info("publishing", "tracks", describeTracks(tracks))

	// The multitrack connection's other video tracks, as variants of the
	// source just published.
	c.variants = variants
	for _, v := range variants {
		vp, err := c.s.Sink.Publish(PublishInfo{Name: name, Proto: "rtmp", Remote: c.remote, Tracks: []*Track{v.track}, Variant: v.name})
		if err != nil {
			c.log.Warn("variant refused", "variant", v.name, "err", err)
			continue
		}
		v.pub = vp
		c.log.Info("publishing variant", "variant", v.name, "tracks", describeTracks([]*Track{v.track}))
	}

	// From here on, data messages are handed over too.
	r.Conn = &rtmpDataTap{Conn: r.Conn, onData: pub.WriteData}

	for {
		if err := r.Read(); err != nil {
			return err
		}
		if c.writeErr != nil {
			return c.writeErr
		}
	}
}

// resolveName finds the public stream name of a publish command, or refuses
// the publisher. With authentication on, the key is never logged.
func (c *rtmpConn) resolveName(sc *gortmplib.ServerConn) (name, key string, err error) {
	key, err = streamKeyFromURL(sc.URL)
	if err != nil {
		c.refuse(sc, "NetStream.Publish.BadName", "publish to rtmp://HOST/"+rtmpApp+"/KEY")
		ref := &refusal{err: err}
		if !c.s.auth.Enabled {
			// The path may hold the key; it is only secret with auth on.
			ref.attrs = []any{"path", truncate(sc.URL.Path, 80)}
		}
		return "", "", ref
	}

	name, err = c.s.auth.Resolve(key)
	if err != nil {
		if errors.Is(err, ErrUnknownKey) {
			c.refuse(sc, "NetStream.Publish.Unauthorized", "unknown stream key")
		} else {
			c.refuse(sc, "NetStream.Publish.BadName", err.Error())
		}
		// Resolve's errors never contain the key.
		return "", "", &refusal{err: err}
	}
	return name, key, nil
}

// refusal is a publisher turned away (bad URL, unknown key, unsupported
// codec), logged as "publish refused".
type refusal struct {
	err   error
	attrs []any
}

func (r *refusal) Error() string { return "publish refused: " + r.err.Error() }
func (r *refusal) Unwrap() error { return r.err }

// refuse tells the client why it is refused, before the connection closes.
func (c *rtmpConn) refuse(sc *gortmplib.ServerConn, code, description string) {
	_ = sc.Write(&message.CommandAMF0{
		ChunkStreamID:   5,
		MessageStreamID: 0x1000000, // gortmplib's encoding of stream 1
		Name:            "onStatus",
		Arguments: []any{
			nil,
			amf0.Object{
				{Key: "level", Value: "error"},
				{Key: "code", Value: code},
				{Key: "description", Value: description},
			},
		},
	})
}

// kick closes the connection because a newer publisher took its name, and
// waits (at most ReadTimeout) until its publication is closed, so that the
// Sink sees the old publication end before the new one starts.
func (c *rtmpConn) kick() {
	c.kicked.Store(true)
	c.nc.Close()

	t := time.NewTimer(c.s.readTimeout)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
		c.log.Warn("replaced publisher did not stop in time")
	}
}

// redact hides gortmplib's error details when authentication is on: errors
// from the connect and publish commands may print the tcUrl or the URL, which
// can hold the secret stream key.
func (c *rtmpConn) redact(err error) error {
	if !c.s.auth.Enabled {
		return err
	}
	for _, safe := range []error{io.EOF, io.ErrUnexpectedEOF, os.ErrDeadlineExceeded, net.ErrClosed} {
		if errors.Is(err, safe) {
			return err
		}
	}
	return errors.New("malformed handshake or command (details hidden while authentication is on)")
}

// deadlineConn is what gortmplib reads and writes. It drops a peer that
// stops sending (every read must complete within timeout, and so must every
// write), and shows every byte read to the guard before gortmplib gets it.
type deadlineConn struct {
	net.Conn
	timeout time.Duration
	guard   *rtmpGuard
	active  *atomic.Int64 // set to the time of every read that got bytes
}

func (d *deadlineConn) Read(p []byte) (int, error) {
	if err := d.Conn.SetReadDeadline(time.Now().Add(d.timeout)); err != nil {
		return 0, err
	}
	n, err := d.Conn.Read(p)
	if n > 0 {
		if d.active != nil {
			d.active.Store(time.Now().UnixNano())
		}
		if gerr := d.guard.feed(p[:n]); gerr != nil {
			return 0, gerr
		}
	}
	return n, err
}

func (d *deadlineConn) Write(p []byte) (int, error) {
	if err := d.Conn.SetWriteDeadline(time.Now().Add(d.timeout)); err != nil {
		return 0, err
	}
	return d.Conn.Write(p)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
