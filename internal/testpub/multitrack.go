package testpub

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bluenviron/gortmplib"
	rtmpcodecs "github.com/bluenviron/gortmplib/pkg/codecs"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
)

// PublishMultitrack publishes several renditions of one picture over one
// Enhanced RTMP connection, as OBS's Enhanced Broadcasting does: the H.264
// video of each FLV file in videoPaths is one video track (the first file's
// is track 0, sent as classic RTMP video; the others go in multitrack video
// messages), and the AAC audio of the first file is the audio track. The
// files must be encodes of one source at one frame rate and keyframe
// interval (ffmpeg with split outputs), so that their frames have the same
// timestamps. gomedia's client has no multitrack video, so this one is
// gortmplib's Client and Writer (the server's own RTMP stack: the media
// framing is checked by the other publishers).
//
// Of opts it uses Speed, Unpaced, Loops and TimestampOffset. It returns
// nil when every frame is sent and ctx.Err() when ctx ends first.
func PublishMultitrack(ctx context.Context, rawURL string, videoPaths []string, opts Options) error {
	if len(videoPaths) == 0 {
		return errors.New("no video files")
	}
	type item struct {
		track *gortmplib.Track
		order int // video tracks in file order, then the audio
		f     Frame
		au    [][]byte // video NAL units
		aac   []byte   // an AAC access unit without ADTS
	}
	var items []item
	var tracks []*gortmplib.Track
	var audio *gortmplib.Track
	var span time.Duration
	for i, path := range videoPaths {
		frames, err := readFrames(path)
		if err != nil {
			return err
		}
		if i == 0 {
			span = loopSpan(frames)
		}
		var video *gortmplib.Track
		for _, f := range frames {
			switch {
			case f.Codec == CodecH264:
				var au h264.AnnexB
				if err := au.Unmarshal(f.Data); err != nil {
					return fmt.Errorf("%s: %w", path, err)
				}
				if video == nil {
					var sps, pps []byte
					for _, n := range au {
						switch h264.NALUType(n[0] & 0x1f) {
						case h264.NALUTypeSPS:
							sps = n
						case h264.NALUTypePPS:
							pps = n
						}
					}
					if sps == nil || pps == nil {
						continue // before the first keyframe with its parameters
					}
					video = &gortmplib.Track{Codec: &rtmpcodecs.H264{SPS: sps, PPS: pps}}
					tracks = append(tracks, video)
				}
				items = append(items, item{track: video, order: i, f: f, au: au})
			case f.Codec == CodecAAC && i == 0:
				var pkts mpeg4audio.ADTSPackets
				if err := pkts.Unmarshal(f.Data); err != nil {
					return fmt.Errorf("%s: %w", path, err)
				}
				for j, p := range pkts {
					if audio == nil {
						audio = &gortmplib.Track{Codec: &rtmpcodecs.MPEG4Audio{Config: &mpeg4audio.AudioSpecificConfig{
							Type: p.Type, SampleRate: p.SampleRate, ChannelConfig: p.ChannelConfig,
						}}}
					}
					g := f
					g.PTS += time.Duration(j) * 1024 * time.Second / time.Duration(p.SampleRate)
					g.DTS = g.PTS
					items = append(items, item{track: audio, order: len(videoPaths), f: g, aac: p.AU})
				}
			}
		}
		if video == nil {
			return fmt.Errorf("%s: no H.264 video with its parameter sets", path)
		}
	}
	if audio != nil {
		tracks = append(tracks, audio)
	}
	// In decode order, the video tracks' frames of one instant together.
	slices.SortStableFunc(items, func(a, b item) int {
		if c := cmp.Compare(a.f.DTS, b.f.DTS); c != 0 {
			return c
		}
		return cmp.Compare(a.order, b.order)
	})
	first := items[0].f.DTS

	u, err := url.Parse(rawURL)
	if err != nil {
		return err
	}
	c := &gortmplib.Client{URL: u, Publish: true}
	if err := c.Initialize(ctx); err != nil {
		return err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, c.Close)
	defer stop()
	w := &gortmplib.Writer{Conn: c, Tracks: tracks}
	if err := w.Initialize(); err != nil {
		return err
	}

	speed := opts.Speed
	if speed <= 0 {
		speed = 1
	}
	start := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for loop := range max(opts.Loops, 1) {
		offset := time.Duration(loop)*span + opts.TimestampOffset
		for _, it := range items {
			if !opts.Unpaced {
				due := start.Add(time.Duration(float64(it.f.DTS-first+time.Duration(loop)*span) / speed))
				if wait := time.Until(due); wait > 0 {
					timer.Reset(wait)
					select {
					case <-timer.C:
					case <-ctx.Done():
						return ctx.Err()
					}
				}
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			pts, dts := it.f.PTS+offset, it.f.DTS+offset
			if it.aac != nil {
				err = w.WriteMPEG4Audio(it.track, pts, it.aac)
			} else {
				err = w.WriteH264(it.track, pts, dts, it.au)
			}
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return fmt.Errorf("%w: %w", ErrServerClosed, err)
			}
		}
	}
	return nil
}

// EncodeLadder encodes one test picture (ffmpeg's testsrc2 and a sine tone)
// for dur at fps frames a second, a keyframe every gop frames, into one FLV
// file per height in dir (the first at 16:9, the others scaled from it in
// the same ffmpeg run, so that every file has the same frame timestamps and
// keyframes), and returns their paths, for PublishMultitrack. ffmpeg is
// found on PATH.
func EncodeLadder(ctx context.Context, dir string, dur time.Duration, fps, gop int, heights ...int) ([]string, error) {
	if len(heights) == 0 {
		return nil, errors.New("no heights")
	}
	w := heights[0] * 16 / 9 &^ 1
	t := strconv.FormatFloat(dur.Seconds(), 'f', 3, 64)
	args := []string{"-hide_banner", "-nostdin", "-loglevel", "error", "-y",
		"-f", "lavfi", "-t", t, "-i", fmt.Sprintf("testsrc2=size=%dx%d:rate=%d", w, heights[0], fps),
		"-f", "lavfi", "-t", t, "-i", "sine=frequency=440:sample_rate=48000"}
	var split strings.Builder
	fmt.Fprintf(&split, "[0:v]split=%d", len(heights))
	for i := range heights {
		fmt.Fprintf(&split, "[s%d]", i)
	}
	for i, h := range heights {
		fmt.Fprintf(&split, ";[s%d]scale=-2:%d[v%d]", i, h, i)
	}
	args = append(args, "-filter_complex", split.String())
	var paths []string
	for i, h := range heights {
		kbps := max(h*h/300, 100)
		path := filepath.Join(dir, fmt.Sprintf("ladder%d_%dp.flv", i, h))
		args = append(args, "-map", fmt.Sprintf("[v%d]", i), "-map", "1:a",
			"-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-pix_fmt", "yuv420p",
			"-b:v", fmt.Sprintf("%dk", kbps), "-maxrate", fmt.Sprintf("%dk", kbps), "-bufsize", fmt.Sprintf("%dk", 2*kbps),
			"-g", strconv.Itoa(gop), "-keyint_min", strconv.Itoa(gop), "-sc_threshold", "0", "-bf", "0",
			"-c:a", "aac", "-b:a", "128k", "-ar", "48000", "-ac", "2", "-f", "flv", path)
		paths = append(paths, path)
	}
	out, err := exec.CommandContext(ctx, "ffmpeg", args...).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("ffmpeg: %w: %s", err, out)
	}
	return paths, nil
}
