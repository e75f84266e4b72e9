package testpub

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"time"

	flv "github.com/yapingcat/gomedia/go-flv"
	rtmp "github.com/yapingcat/gomedia/go-rtmp"
)

// chunkSize is the chunk size the client announces and writes with.
const chunkSize = 4096

// ErrServerClosed is returned when the server closed the connection.
var ErrServerClosed = errors.New("server closed the connection")

// Client is an RTMP publishing connection built on gomedia's RTMP client,
// a stack independent of the server under test.
type Client struct {
	nc  net.Conn
	mu  sync.Mutex // serialises the gomedia client and writes to nc
	cli *rtmp.RtmpClient
	mp3 bool // the MP3 muxer is installed

	state chan rtmp.RtmpState
	done  chan struct{}

	errMu  sync.Mutex
	err    error
	status string // last onStatus/_error description from the server
}

// Dial connects to an RTMP URL (rtmp://HOST[:PORT]/APP/KEY), publishes and
// waits until the server answers NetStream.Publish.Start. ctx bounds the
// dial and the handshake.
func Dial(ctx context.Context, rawURL string) (*Client, error) {
	return DialFrom(ctx, rawURL, "")
}

// DialFrom is Dial from the local IP address localIP (any when empty).
func DialFrom(ctx context.Context, rawURL, localIP string) (*Client, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "rtmp" {
		return nil, fmt.Errorf("not an rtmp URL: %s", rawURL)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "1935")
	}

	var d net.Dialer
	if localIP != "" {
		ip := net.ParseIP(localIP)
		if ip == nil {
			return nil, fmt.Errorf("local address %q is not an IP address", localIP)
		}
		d.LocalAddr = &net.TCPAddr{IP: ip}
	}
	nc, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, err
	}

	c := &Client{
		nc:    nc,
		state: make(chan rtmp.RtmpState, 16),
		done:  make(chan struct{}),
	}
	c.cli = rtmp.NewRtmpClient(rtmp.WithEnablePublish(), rtmp.WithChunkSize(chunkSize))
	c.cli.SetOutput(func(b []byte) error {
		_, err := c.nc.Write(b)
		return err
	})
	c.cli.OnStateChange(func(s rtmp.RtmpState) {
		select {
		case c.state <- s:
		default:
		}
	})
	c.cli.OnStatus(func(code, level, describe string) {
		c.setStatus(code + " " + describe)
	})
	c.cli.OnError(func(code, describe string) {
		c.setStatus(code + " " + describe)
	})

	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()

	c.mu.Lock()
	err = safe(func() error { c.cli.Start(rawURL); return nil })
	c.mu.Unlock()
	if err != nil {
		nc.Close()
		return nil, err
	}
	go c.readLoop()

	for {
		select {
		case s := <-c.state:
			switch s {
			case rtmp.STATE_RTMP_PUBLISH_START:
				return c, nil
			case rtmp.STATE_RTMP_PUBLISH_FAILED:
				c.Close()
				return nil, fmt.Errorf("publish refused: %s", c.lastStatus())
			}
		case <-c.done:
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("before publish started: %w (%s)", c.Err(), c.lastStatus())
		}
	}
}

func (c *Client) readLoop() {
	defer close(c.done)
	buf := make([]byte, 64*1024)
	for {
		n, err := c.nc.Read(buf)
		if n > 0 {
			data := append([]byte(nil), buf[:n]...)
			c.mu.Lock()
			ierr := safe(func() error { return c.cli.Input(data) })
			c.mu.Unlock()
			if ierr != nil {
				c.setErr(fmt.Errorf("reading from server: %w", ierr))
				c.nc.Close()
				return
			}
		}
		if err != nil {
			c.setErr(fmt.Errorf("%w: %w", ErrServerClosed, err))
			return
		}
	}
}

// WriteFrame sends one frame, its timestamps rounded to milliseconds.
func (c *Client) WriteFrame(f Frame) error {
	cid, ok := codecToGomedia(f.Codec)
	if !ok {
		return fmt.Errorf("unsupported codec %q", f.Codec)
	}
	pts, dts := ms(f.PTS), ms(f.DTS)
	// gomedia's muxers rewrite start codes in place: give them a copy.
	data := append([]byte(nil), f.Data...)

	c.mu.Lock()
	defer c.mu.Unlock()
	return safe(func() error {
		if f.Codec.IsVideo() {
			return c.cli.WriteVideo(cid, data, pts, dts)
		}
		if f.Codec == CodecMP3 && !c.mp3 {
			// gomedia's own Mp3Muxer emits an empty first tag and the
			// whole input once per frame, and its RTMP client cannot map
			// MP3 to an FLV sound format (it panics): bring a muxer.
			rtmp.WithAudioMuxer(mp3Muxer{})(c.cli)
			c.mp3 = true
		}
		return c.cli.WriteAudio(cid, data, pts, dts)
	})
}

// WriteData sends an AMF0 data message (onCuePoint, onTextData, ...) with
// timestamp ts: the name, then values encoded as encodeAMF0 describes
// (numbers, strings, bools, nil, map[string]any objects, ECMAArray, []any).
func (c *Client) WriteData(ts time.Duration, name string, values ...any) error {
	body, err := encodeAMF0(append([]any{name}, values...)...)
	if err != nil {
		return err
	}
	return c.WriteMessage(msgTypeDataAMF0, ts, body)
}

// WriteMessage sends one RTMP message of type typ (8 audio, 9 video, 18
// AMF0 data, ...) with a body as given, on the publication's message
// stream: for tests of malformed media.
func (c *Client) WriteMessage(typ byte, ts time.Duration, body []byte) error {
	pkt := chunkMessage(rawChunkStreamID, typ, publishStreamID, ms(ts), body, chunkSize)
	c.mu.Lock()
	defer c.mu.Unlock()
	_, err := c.nc.Write(pkt)
	return err
}

// Done is closed when the connection has ended (closed by the server, by an
// error or by Close).
func (c *Client) Done() <-chan struct{} {
	return c.done
}

// Err returns why the connection ended, once Done is closed.
func (c *Client) Err() error {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	return c.err
}

// Close closes the connection and waits for the reading goroutine.
func (c *Client) Close() error {
	err := c.nc.Close()
	<-c.done
	return err
}

// LocalAddr returns the client's address, as the server sees it as remote.
func (c *Client) LocalAddr() net.Addr {
	return c.nc.LocalAddr()
}

func (c *Client) setErr(err error) {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	if c.err == nil {
		c.err = err
	}
}

func (c *Client) setStatus(s string) {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	c.status = s
}

func (c *Client) lastStatus() string {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	return c.status
}

// mp3Muxer writes one FLV MP3 audio tag per frame (gomedia's FLV demuxer
// gives one frame per tag). The tag header says 44.1 kHz stereo: FLV cannot
// say 48 kHz and servers take the rate from the MP3 frame header.
type mp3Muxer struct{}

func (mp3Muxer) Write(frame []byte, _, _ uint32) [][]byte {
	return [][]byte{flv.WriteAudioTag(frame, flv.FLV_MP3, 44100, 2, false)}
}

// ms converts to RTMP's 32-bit milliseconds, wrapping around at 2^32 as
// the specification says timestamps do.
func ms(d time.Duration) uint32 {
	return uint32(int64(d / time.Millisecond))
}
