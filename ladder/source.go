package ladder

import (
	"errors"
	"sync"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"

	"github.com/shopcast/shopcast/ingest"
	"github.com/shopcast/shopcast/packager"
)

// frame is a copy of one source video access unit, taken before the next
// Sink owns the original.
type frame struct {
	pts, dts time.Duration
	key      bool
	au       [][]byte
}

// videoCodec is what the ladder needs to know of a source's video codec.
type videoCodec struct {
	h265   bool
	params [][]byte // parameter sets, put in front of every keyframe
	width  int
	height int
}

// newVideoCodec returns the codec of a video track ffmpeg can read from
// an elementary stream, or nil.
func newVideoCodec(c codecs.Codec) *videoCodec {
	switch c := c.(type) {
	case *codecs.H264:
		v := &videoCodec{params: nonEmpty(c.SPS, c.PPS)}
		var sps h264.SPS
		if sps.Unmarshal(c.SPS) == nil {
			v.width, v.height = sps.Width(), sps.Height()
		}
		return v
	case *codecs.H265:
		v := &videoCodec{h265: true, params: nonEmpty(c.VPS, c.SPS, c.PPS)}
		var sps h265.SPS
		if sps.Unmarshal(c.SPS) == nil {
			v.width, v.height = sps.Width(), sps.Height()
		}
		return v
	}
	return nil
}

func nonEmpty(nalus ...[]byte) [][]byte {
	var out [][]byte
	for _, n := range nalus {
		if len(n) > 0 {
			out = append(out, n)
		}
	}
	return out
}

// isKey reports whether au starts a picture a decoder can start from.
func (v *videoCodec) isKey(au [][]byte) bool {
	if v.h265 {
		return h265.IsRandomAccess(au)
	}
	return h264.IsRandomAccess(au)
}

// hasParams reports whether au carries its own SPS.
func (v *videoCodec) hasParams(au [][]byte) bool {
	for _, n := range au {
		if v.h265 && len(n) > 0 && h265.NALUType((n[0]>>1)&0x3f) == h265.NALUType_SPS_NUT ||
			!v.h265 && len(n) > 0 && h264.NALUType(n[0]&0x1f) == h264.NALUTypeSPS {
			return true
		}
	}
	return false
}

// copyFrame copies u into one buffer, with the parameter sets in front of
// a keyframe that lacks them (RTMP and RTSP publishers often send them only
// out of band, and ffmpeg's decoder drops what it cannot start).
func (v *videoCodec) copyFrame(u *ingest.Unit, key bool) *frame {
	nalus := u.AU
	if key && !v.hasParams(u.AU) {
		nalus = append(append(make([][]byte, 0, len(v.params)+len(u.AU)), v.params...), u.AU...)
	}
	size := 0
	for _, n := range nalus {
		size += len(n)
	}
	buf := make([]byte, 0, size)
	au := make([][]byte, len(nalus))
	for i, n := range nalus {
		buf = append(buf, n...)
		au[i] = buf[len(buf)-len(n):]
	}
	return &frame{pts: u.PTS, dts: u.DTS, key: key, au: au}
}

// source wraps a source publication: every unit goes on to the next Sink
// first, and its video is then copied to the ladder's queue and, every
// PosterInterval, to a poster ffmpeg.
type source struct {
	l     *Ladder
	info  ingest.PublishInfo
	next  ingest.Publication
	video *ingest.Track
	codec *videoCodec

	lad *runner // nil without a ladder

	// lastPoster is when the last poster was begun; only WriteUnit's
	// goroutine reads and writes it.
	lastPoster time.Time

	stopOnce sync.Once
}

// newSource returns the wrapper of a publication, or nil when it has no
// video track ffmpeg can decode.
func newSource(l *Ladder, info ingest.PublishInfo, next ingest.Publication) *source {
	for _, t := range info.Tracks {
		if c := newVideoCodec(t.Codec); c != nil && len(c.params) > 0 {
			return &source{l: l, info: info, next: next, video: t, codec: c}
		}
	}
	return nil
}

// WriteUnit implements ingest.Publication. The unit is handed on before
// anything else, and the ladder's copy only queued: the live path never
// waits for ffmpeg.
func (s *source) WriteUnit(u *ingest.Unit) error {
	if u.Track != s.video || len(u.AU) == 0 {
		return s.next.WriteUnit(u)
	}
	var f *frame
	key := s.codec.isKey(u.AU)
	posterDue := key && s.l.cfg.PosterInterval > 0 && time.Since(s.lastPoster) >= s.l.cfg.PosterInterval
	laddered := s.lad != nil && s.lad.ctx.Err() == nil
	if laddered || posterDue {
		f = s.codec.copyFrame(u, key)
	}
	err := s.next.WriteUnit(u)
	if errors.Is(err, packager.ErrSuperseded) {
		s.stop()
		return err
	}
	if f == nil || err != nil {
		return err
	}
	if laddered {
		s.lad.offer(f)
	}
	if posterDue && s.l.makePoster(s, f) {
		s.lastPoster = time.Now()
	}
	return nil
}

// WriteData implements ingest.Publication.
func (s *source) WriteData(d *ingest.Data) { s.next.WriteData(d) }

// Close implements ingest.Publication: the ladder stops with its source.
func (s *source) Close() {
	s.stop()
	s.l.ended(s)
	s.next.Close()
}

// stop ends the ladder's ffmpeg, if any, and waits for it.
func (s *source) stop() {
	s.stopOnce.Do(func() {
		if s.lad != nil {
			s.lad.stop()
		}
	})
}
