package recorder

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/shopcast/shopcast/internal/atomicfile"
	"github.com/shopcast/shopcast/internal/hlsname"
	"github.com/shopcast/shopcast/packager"
)

// File names inside a recording's directory, besides the live init and
// segment names.
const (
	playlistFile     = hlsname.Media // stream.m3u8
	multivariantFile = hlsname.Multivariant
	manifestFile     = "manifest.json"
)

// idLayout is a recording id: the UTC start, sortable as text.
const idLayout = "20060102T150405Z"

// pdtLayout is EXT-X-PROGRAM-DATE-TIME as the live playlists write it.
const pdtLayout = "2006-01-02T15:04:05.000Z07:00"

// recording is one session of a stream being written. Owned by the
// writer goroutine.
type recording struct {
	key  key
	id   string
	dir  string // "" until the first segment is written
	path string // NAME/ID

	td     int
	segs   []recSeg
	inits  map[string]bool
	events []packager.EventInfo // in the order they were added, as live lists them
	gap    bool                 // the next segment follows segments not recorded

	size          int64
	peak, bits    float64
	dur           time.Duration
	frames        int
	codecs        []string
	width, height int
}

type recSeg struct {
	file, init string
	pdt        time.Time
	dur        time.Duration
	disc       bool
}

func (r *Recorder) recording(k key) *recording {
	rec := r.recs[k]
	if rec == nil {
		rec = &recording{key: k, inits: map[string]bool{}}
		r.recs[k] = rec
	}
	return rec
}

// writeSegment records one segment, unless writing is paused.
func (r *Recorder) writeSegment(si *packager.SegmentInfo, gap bool) {
	rec := r.recording(key{si.Stream, si.Session})
	rec.gap = rec.gap || gap
	if !r.canWrite() {
		rec.gap = true
		r.dropped.Add(1)
		return
	}
	if rec.dir == "" {
		if err := r.create(rec, si); err != nil {
			rec.gap = true
			r.dropped.Add(1)
			r.failed(si.Stream, err)
			return
		}
	}
	if err := r.append(rec, si); err != nil {
		rec.gap = true
		r.dropped.Add(1)
		r.failed(si.Stream, err)
	}
}

// create makes the recording's directory, named by its start.
func (r *Recorder) create(rec *recording, si *packager.SegmentInfo) error {
	parent := filepath.Join(r.cfg.Dir, si.Stream)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	base := si.PDT.UTC().Format(idLayout)
	for n := 1; ; n++ {
		id := base
		if n > 1 {
			// Two sessions started within a second: still sortable.
			id = fmt.Sprintf("%s-%d", base, n)
		}
		err := os.Mkdir(filepath.Join(parent, id), 0o755)
		if errors.Is(err, os.ErrExist) && n < 100 {
			continue
		}
		if err != nil {
			return err
		}
		rec.id, rec.dir, rec.path = id, filepath.Join(parent, id), si.Stream+"/"+id
		break
	}
	r.setActive(rec.path, true)
	r.log.Info("recording started", "stream", si.Stream, "id", rec.id)
	return nil
}

// append writes the segment (and its init section the first time), each
// fsynced, then the playlist that lists it and the manifest.
func (r *Recorder) append(rec *recording, si *packager.SegmentInfo) error {
	if !rec.inits[si.Init.Name] {
		if err := atomicfile.WriteSynced(filepath.Join(rec.dir, si.Init.Name), si.Init.Body); err != nil {
			return err
		}
		rec.inits[si.Init.Name] = true
		r.bytes.Add(int64(len(si.Init.Body)))
		rec.size += int64(len(si.Init.Body))
	}
	file := hlsname.Segment(si.MSN)
	if err := atomicfile.WriteSynced(filepath.Join(rec.dir, file), si.Body); err != nil {
		return err
	}
	r.bytes.Add(int64(len(si.Body)))
	rec.size += int64(len(si.Body))
	if rec.td == 0 {
		rec.td = si.TargetDuration
	}
	// EXTINF rounded must not exceed EXT-X-TARGETDURATION (RFC 8216bis
	// 4.4.3.1); the live one holds for every segment but a GOP too long.
	rec.td = max(rec.td, int(math.Round(si.Duration.Seconds())), 1)
	rec.segs = append(rec.segs, recSeg{
		file: file, init: si.Init.Name, pdt: si.PDT, dur: si.Duration,
		disc: len(rec.segs) > 0 && (si.Discontinuity || rec.gap),
	})
	rec.gap = false
	if d := si.Duration.Seconds(); d > 0 {
		rec.peak = max(rec.peak, float64(len(si.Body)*8)/d)
	}
	rec.bits += float64(len(si.Body) * 8)
	rec.dur += si.Duration
	rec.frames += si.Frames
	rec.codecs, rec.width, rec.height = si.Init.Codecs, si.Init.Width, si.Init.Height
	if err := r.flush(rec, false); err != nil {
		rec.segs = rec.segs[:len(rec.segs)-1]
		return err
	}
	return nil
}

// flush writes the playlist, then the manifest, each atomically.
func (r *Recorder) flush(rec *recording, ended bool) error {
	if err := atomicfile.Replace(filepath.Join(rec.dir, playlistFile), rec.playlist(ended)); err != nil {
		return err
	}
	// The cue indexes before the manifest, which the API reads first.
	cues := rec.cueIndex()
	cb, err := json.MarshalIndent(cues, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Replace(filepath.Join(rec.dir, cuesFile), cb); err != nil {
		return err
	}
	ch, err := chapters(cues)
	if err != nil {
		return err
	}
	if err := atomicfile.Replace(filepath.Join(rec.dir, chaptersFile), ch); err != nil {
		return err
	}
	b, err := rec.manifest(ended).marshal()
	if err != nil {
		return err
	}
	return atomicfile.Replace(filepath.Join(rec.dir, manifestFile), b)
}

// updateEvent keeps an event's latest placement; the next playlist lists
// it. A cancelled one (ended before it began) left the live playlists and
// leaves the recording.
func (r *Recorder) updateEvent(ei *packager.EventInfo) {
	rec := r.recording(key{ei.Stream, ei.Session})
	for i := range rec.events {
		if rec.events[i].Event.ID == ei.Event.ID {
			if ei.Cancelled {
				rec.events = append(rec.events[:i], rec.events[i+1:]...)
			} else {
				rec.events[i] = *ei
			}
			return
		}
	}
	if !ei.Cancelled {
		rec.events = append(rec.events, *ei)
	}
}

// endRecording closes a session's recording: EXT-X-ENDLIST, VOD.
func (r *Recorder) endRecording(se *packager.StreamEnd) {
	k := key{se.Stream, se.Session}
	rec := r.recs[k]
	delete(r.recs, k)
	delete(r.gaps, k)
	if rec == nil || rec.dir == "" {
		return
	}
	defer r.setActive(rec.path, false)
	if len(rec.segs) == 0 {
		_ = os.RemoveAll(rec.dir)
		return
	}
	if err := r.flush(rec, true); err != nil {
		r.writeErrs.Add(1)
		r.log.Warn("recording not closed; it is closed at the next start", "stream", se.Stream, "id", rec.id, "err", err)
		return
	}
	r.log.Info("recording ended", "stream", se.Stream, "id", rec.id, "duration", rec.dur, "bytes", rec.size)
	if r.cfg.OnReady != nil {
		r.cfg.OnReady(se.Stream, rec.id)
	}
}

// playlist renders the media playlist: EVENT while it grows, VOD with
// EXT-X-ENDLIST once ended.
func (rec *recording) playlist(ended bool) []byte {
	var b bytes.Buffer
	b.WriteString("#EXTM3U\n#EXT-X-VERSION:6\n")
	fmt.Fprintf(&b, "#EXT-X-TARGETDURATION:%d\n", rec.td)
	// RFC 8216bis 4.4.3.5: an EVENT playlist only grows; a VOD one never
	// changes.
	if ended {
		b.WriteString("#EXT-X-PLAYLIST-TYPE:VOD\n")
	} else {
		b.WriteString("#EXT-X-PLAYLIST-TYPE:EVENT\n")
	}
	// Every segment starts on a keyframe, as live.
	b.WriteString("#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-MEDIA-SEQUENCE:0\n")
	for i := range rec.events {
		ei := &rec.events[i]
		// The live line, rendered by the packager's own framing.
		line, err := ei.Event.DateRangeTag(ei.Start.Wall, ei.End.Wall)
		if err == nil && line != "" {
			b.WriteString(line)
			b.WriteByte('\n')
		}
	}
	lastInit := ""
	for _, s := range rec.segs {
		if s.disc {
			b.WriteString("#EXT-X-DISCONTINUITY\n")
		}
		if s.init != lastInit {
			fmt.Fprintf(&b, "#EXT-X-MAP:URI=\"%s\"\n", s.init)
			lastInit = s.init
		}
		fmt.Fprintf(&b, "#EXT-X-PROGRAM-DATE-TIME:%s\n", s.pdt.UTC().Format(pdtLayout))
		fmt.Fprintf(&b, "#EXTINF:%s,\n%s\n", strconv.FormatFloat(s.dur.Seconds(), 'f', 5, 64), s.file)
	}
	if ended {
		b.WriteString("#EXT-X-ENDLIST\n")
	}
	return b.Bytes()
}

// manifest describes the recording as written so far.
func (rec *recording) manifest(ended bool) *Manifest {
	m := &Manifest{
		Stream:     rec.key.stream,
		ID:         rec.id,
		State:      StateRecording,
		DurationMs: rec.dur.Milliseconds(),
		SizeBytes:  rec.size,
		Segments:   len(rec.segs),
		Codecs:     rec.codecs,
		Width:      rec.width,
		Height:     rec.height,
		Bandwidth:  int64(rec.peak),
	}
	if ended {
		m.State = StateComplete
	}
	if n := len(rec.segs); n > 0 {
		m.Start = rec.segs[0].pdt.UTC()
		last := rec.segs[n-1]
		m.End = last.pdt.Add(last.dur).UTC()
	}
	if s := rec.dur.Seconds(); s > 0 {
		m.AverageBandwidth = int64(rec.bits / s)
		m.FrameRate = math.Round(float64(rec.frames)/s*1000) / 1000
	}
	for _, s := range rec.segs {
		if s.disc {
			m.Discontinuities++
		}
	}
	for i := range rec.events {
		if rec.events[i].Event.DateRange != nil {
			m.Cues++
		}
	}
	return m
}
