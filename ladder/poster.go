package ladder

import (
	"bytes"
	"context"
	"fmt"
	"image/jpeg"
	"io"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
)

// Poster is the latest picture of a stream, as a JPEG.
type Poster struct {
	JPEG          []byte
	Made          time.Time
	Width, Height int
}

// posterTimeout bounds one poster ffmpeg: decoding one keyframe takes tens
// of milliseconds, so anything near this is a hung process.
const posterTimeout = 10 * time.Second

// Poster returns the latest poster of a stream; false when none has been
// made yet (or the stream is gone). The JPEG is shared: do not modify it.
func (l *Ladder) Poster(stream string) (Poster, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p, ok := l.posters[stream]
	if !ok {
		return Poster{}, false
	}
	return *p, true
}

// makePoster starts a poster ffmpeg on one keyframe, unless
// PosterConcurrency of them are busy; false then, and the stream tries its
// next keyframe.
func (l *Ladder) makePoster(s *source, f *frame) bool {
	if l.ctx.Err() != nil {
		return false // closed: Close may be waiting on l.wg
	}
	select {
	case l.posterSlots <- struct{}{}:
	default:
		l.stats.posterSkipped.Add(1)
		return false
	}
	l.wg.Go(func() {
		defer func() { <-l.posterSlots }()
		p, cpu, err := l.encodePoster(s.codec.h265, f)
		l.stats.posterCPU.Add(int64(cpu))
		if err != nil {
			l.stats.posterErrors.Add(1)
			if l.ctx.Err() == nil {
				l.log.Warn("poster not made", "stream", s.info.Name, "err", err)
			}
			return
		}
		l.stats.posters.Add(1)
		l.mu.Lock()
		if l.current[s.info.Name] == s {
			l.posters[s.info.Name] = p
		}
		l.mu.Unlock()
	})
	return true
}

// encodePoster decodes one keyframe (an elementary stream of one access
// unit, parameter sets in front) into a JPEG of the source's size.
func (l *Ladder) encodePoster(h265 bool, f *frame) (*Poster, time.Duration, error) {
	es, err := h264.AnnexB(f.au).Marshal() // H.265 uses the same start codes
	if err != nil {
		return nil, 0, err
	}
	format := "h264"
	if h265 {
		format = "hevc"
	}
	ctx, cancel := context.WithTimeout(l.ctx, posterTimeout)
	defer cancel()
	p, err := startProcess(ctx, l.ffmpeg, []string{
		"-hide_banner", "-nostdin", "-nostats", "-loglevel", "error",
		"-f", format, "-i", "pipe:0",
		"-frames:v", "1", "-q:v", "5", "-f", "mjpeg", "pipe:1",
	}, 0, true)
	if err != nil {
		return nil, 0, err
	}
	written := make(chan error, 1)
	go func() {
		_, err := p.stdin.Write(es)
		_ = p.stdin.Close()
		written <- err
	}()
	out, readErr := io.ReadAll(io.LimitReader(p.stdout, 16<<20))
	waitErr := p.wait()
	<-written
	cpu := p.cpu()
	switch {
	case readErr != nil:
		return nil, cpu, readErr
	case waitErr != nil:
		return nil, cpu, fmt.Errorf("ffmpeg: %w: %s", waitErr, lastLines(p.stderr.String(), 2))
	}
	cfg, err := jpeg.DecodeConfig(bytes.NewReader(out))
	if err != nil {
		return nil, cpu, fmt.Errorf("ffmpeg's poster: %w", err)
	}
	return &Poster{JPEG: out, Made: time.Now(), Width: cfg.Width, Height: cfg.Height}, cpu, nil
}

// PosterJPEG implements origin.Posters.
func (l *Ladder) PosterJPEG(stream string) ([]byte, time.Time, bool) {
	p, ok := l.Poster(stream)
	return p.JPEG, p.Made, ok
}
