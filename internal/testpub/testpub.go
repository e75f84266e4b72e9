// Package testpub publishes FLV files over RTMP for tests, with
// github.com/yapingcat/gomedia's FLV demuxer and RTMP client: a stack
// independent of the server's (gortmplib), so that the server is checked by
// software it does not share code with.
//
// Every gomedia call that reads outside bytes runs under recover(): gomedia
// panics on malformed input, and a test publisher must fail, not crash.
package testpub

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// DataMessage is an AMF0 data message to send during Publish.
type DataMessage struct {
	// Time is the message timestamp; it is sent just before the first frame
	// whose DTS is at or after Time (after the last frame if none is).
	Time time.Duration
	// Name is the message name: onCuePoint, onTextData, ...
	Name string
	// Values follow the name; see Client.WriteData for the encoding.
	Values []any
}

// Options tune Publish. The zero value publishes the file once in real time.
type Options struct {
	// Speed is the pace relative to real time: 4 sends four seconds of media
	// per second. It defaults to 1.
	Speed float64
	// Unpaced sends frames as fast as the connection takes them.
	Unpaced bool
	// Loops is how many times the file is sent, timestamps continuing from
	// one loop to the next. It defaults to 1.
	Loops int
	// Data are data messages sent among the frames.
	Data []DataMessage
	// StallAfter, when positive, stops sending before the first frame whose
	// DTS is after it and keeps the connection open, silent, until ctx is
	// done or the server closes it: an encoder that hangs, or a network
	// that drops without a FIN.
	StallAfter time.Duration
	// LocalIP is the address the client connects from, such as 127.0.0.2
	// for a second publisher that the server must see as another host
	// (Linux routes all of 127.0.0.0/8 to loopback). It defaults to the
	// system's choice.
	LocalIP string
	// TimestampOffset is added to every timestamp sent. RTMP timestamps are
	// 32-bit milliseconds (RTMP specification 5.3.1.3), so an offset near
	// 2^32 ms makes them wrap around during the file, as those of relays and
	// encoders that start at an offset do. It defaults to 0.
	TimestampOffset time.Duration
}

// Publish connects to url (rtmp://HOST[:PORT]/APP/KEY), publishes the FLV
// file at flvPath paced by its timestamps, and closes the connection. It
// returns nil when every frame is sent; ctx.Err() when ctx is done; an
// error wrapping ErrServerClosed when the server closed the connection
// (refused it, replaced it, timed it out); another error when the file or
// the connection fails.
func Publish(ctx context.Context, url string, flvPath string, opts Options) error {
	frames, err := readFrames(flvPath)
	if err != nil {
		return err
	}

	c, err := DialFrom(ctx, url, opts.LocalIP)
	if err != nil {
		return err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.nc.Close() })
	defer stop()

	speed := opts.Speed
	if speed <= 0 {
		speed = 1
	}
	loops := max(opts.Loops, 1)
	span := loopSpan(frames)
	data := slices.Clone(opts.Data)
	slices.SortStableFunc(data, func(a, b DataMessage) int { return cmp.Compare(a.Time, b.Time) })

	sendData := func(upTo time.Duration, all bool) error {
		for len(data) > 0 && (all || data[0].Time <= upTo) {
			if err := c.WriteData(data[0].Time+opts.TimestampOffset, data[0].Name, data[0].Values...); err != nil {
				return err
			}
			data = data[1:]
		}
		return nil
	}

	start := time.Now()
	first := frames[0].DTS
	timer := time.NewTimer(0)
	defer timer.Stop()

	for loop := range loops {
		offset := time.Duration(loop) * span
		for _, f := range frames {
			f.PTS += offset
			f.DTS += offset
			f.PTS, f.DTS = f.PTS+opts.TimestampOffset, f.DTS+opts.TimestampOffset

			if opts.StallAfter > 0 && f.DTS-opts.TimestampOffset > opts.StallAfter {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-c.Done():
					return ended(ctx, c)
				}
			}

			if !opts.Unpaced {
				due := start.Add(time.Duration(float64(f.DTS-opts.TimestampOffset-first) / speed))
				if wait := time.Until(due); wait > 0 {
					timer.Reset(wait)
					select {
					case <-timer.C:
					case <-ctx.Done():
						return ctx.Err()
					case <-c.Done():
						return ended(ctx, c)
					}
				}
			}

			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-c.Done():
				return ended(ctx, c)
			default:
			}

			if err := sendData(f.DTS-opts.TimestampOffset, false); err != nil {
				return fail(ctx, c, err)
			}
			if err := c.WriteFrame(f); err != nil {
				return fail(ctx, c, err)
			}
		}
	}
	if err := sendData(0, true); err != nil {
		return fail(ctx, c, err)
	}
	return nil
}

// ended says why the connection ended. Cancelling ctx closes the
// connection, so both can be done when a select looks: the context wins.
func ended(ctx context.Context, c *Client) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return c.Err()
}

// fail explains a write error: the context ended, or the server left. A
// write can fail on a reset before the reading side has seen the close, so
// it waits a little for the reading side to end.
func fail(ctx context.Context, c *Client, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	t := time.NewTimer(time.Second)
	defer t.Stop()
	select {
	case <-c.Done():
		if cerr := ended(ctx, c); cerr != nil && errors.Is(cerr, ErrServerClosed) {
			return fmt.Errorf("%w (write: %v)", cerr, err)
		}
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// loopSpan is the time one loop of frames lasts: from the first DTS to the
// last, plus one video frame (or, without video, one audio frame), so that
// the next loop's timestamps follow on.
func loopSpan(frames []Frame) time.Duration {
	first, last := frames[0].DTS, frames[0].DTS
	for _, f := range frames {
		first, last = min(first, f.DTS), max(last, f.DTS)
	}
	step := time.Millisecond
	for _, video := range []bool{true, false} {
		var prev []time.Duration
		for _, f := range frames {
			if f.Codec.IsVideo() == video {
				prev = append(prev, f.DTS)
			}
		}
		if n := len(prev); n >= 2 {
			step = max(prev[n-1]-prev[n-2], step)
			break
		}
	}
	return last - first + step
}
