package e2etest

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/shopcast/shopcast/internal/testpub"
)

// Encoder stands for one encoder pushing the same feed to several origins
// (OBS's multiple outputs): it loops an FLV file's frames, timestamps
// continuing from loop to loop, and sends each frame to every connected
// output at Start plus its decode time. All outputs get the same frames on
// the same clock; each may be disconnected, reconnected (its timestamps
// then count from 0 again, as an encoder's new connection does) or made to
// lose frames.
type Encoder struct {
	// Start is the wall time of the first frame's decode time.
	Start time.Time

	frames []testpub.Frame // video and audio, in decode order
	span   time.Duration   // one loop
	outs   []*Output
}

// Output is one of an Encoder's connections.
type Output struct {
	mu     sync.Mutex
	c      *testpub.Client
	base   time.Duration // subtracted from the timestamps sent on c
	synced bool          // c had its first keyframe
	lossy  bool
	sent   int
	err    error
}

// NewEncoder reads the FLV file at path (whose keyframe interval the
// redundant ingest expects to be the target duration) and returns an
// Encoder with noutputs outputs, none connected yet.
func NewEncoder(t testing.TB, path string, outputs int) *Encoder {
	t.Helper()
	video, audio, err := testpub.ReadFLV(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(video) < 2 {
		t.Fatalf("%s: %d video frames", path, len(video))
	}
	frames := slices.Concat(video, audio)
	slices.SortStableFunc(frames, func(a, b testpub.Frame) int { return cmp.Compare(a.DTS, b.DTS) })
	e := &Encoder{frames: frames, span: video[len(video)-1].DTS - video[0].DTS + (video[1].DTS - video[0].DTS)}
	for range outputs {
		e.outs = append(e.outs, &Output{})
	}
	return e
}

// Output returns output i.
func (e *Encoder) Output(i int) *Output { return e.outs[i] }

// Connect dials url (rtmp://HOST:PORT/APP/KEY) and makes the output send
// from the next keyframe on, its timestamps counting from 0 there.
func (o *Output) Connect(ctx context.Context, url string) error {
	c, err := testpub.Dial(ctx, url)
	if err != nil {
		return err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.c != nil {
		_ = o.c.Close()
	}
	o.c, o.synced, o.err = c, false, nil
	return nil
}

// Disconnect closes the output's connection.
func (o *Output) Disconnect() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.c != nil {
		_ = o.c.Close()
		o.c = nil
	}
}

// Lose makes the output drop every frame while on is true: a link that
// loses frames while the connection stays up.
func (o *Output) Lose(on bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.lossy = on
}

// Sent returns the number of frames sent on the current connection.
func (o *Output) Sent() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.sent
}

// Err returns the error that ended the output's last connection.
func (o *Output) Err() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.err
}

func (o *Output) send(f testpub.Frame) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.c == nil || o.lossy {
		return
	}
	if !o.synced {
		if !f.Codec.IsVideo() || !isKeyframe(f.Codec, f.Data) {
			return
		}
		o.synced, o.base, o.sent = true, f.DTS, 0
	}
	f.PTS, f.DTS = f.PTS-o.base, f.DTS-o.base
	if err := o.c.WriteFrame(f); err != nil {
		// The server went away: the encoder keeps going on the others.
		o.err = err
		_ = o.c.Close()
		o.c = nil
		return
	}
	o.sent++
}

// Run sends the frames until ctx ends, then closes every output. It
// returns ctx's error.
func (e *Encoder) Run(ctx context.Context) error {
	defer func() {
		for _, o := range e.outs {
			o.Disconnect()
		}
	}()
	timer := time.NewTimer(0)
	defer timer.Stop()
	first := e.frames[0].DTS
	for loop := time.Duration(0); ; loop++ {
		for _, f := range e.frames {
			f.PTS += loop * e.span
			f.DTS += loop * e.span
			if wait := time.Until(e.Start.Add(f.DTS - first)); wait > 0 {
				timer.Reset(wait)
				select {
				case <-timer.C:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			for _, o := range e.outs {
				o.send(f)
			}
		}
	}
}

// isKeyframe reports whether an Annex-B access unit of codec c holds an
// H.264 IDR slice or an H.265 IRAP picture.
func isKeyframe(c testpub.Codec, au []byte) bool {
	for i := 0; i+3 < len(au); i++ {
		if au[i] != 0 || au[i+1] != 0 || au[i+2] != 1 {
			continue
		}
		h := au[i+3]
		switch c {
		case testpub.CodecH264:
			if h&0x1f == 5 {
				return true
			}
		case testpub.CodecH265:
			if t := (h >> 1) & 0x3f; t >= 16 && t <= 21 {
				return true
			}
		}
	}
	return false
}
