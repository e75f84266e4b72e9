package recorder

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
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

	size int64
	media

	// variants are the ladder's other renditions, by name, in the order
	// they first came.
	variants []*recVariant
}

// media is what a rendition's multivariant entry says of it.
type media struct {
	peak, bits    float64
	dur           time.Duration
	frames        int
	codecs        []string
	width, height int
}

// recVariant is one variant of a recording: its segments by the MSN of
// the source's they follow. Its playlist lists the source's segments,
// those it has not as EXT-X-GAP, so that every rendition has the same
// timeline.
type recVariant struct {
	name  string
	segs  map[int64]recSeg
	last  int64 // the highest MSN it has
	inits map[string]bool
	media
}

type recSeg struct {
	file, init string
	msn        int64
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
	if si.Variant != "" {
		// A variant's segment not written is a gap in its playlist alone;
		// it follows its source segment, which made the directory.
		if !r.canWrite() || rec.dir == "" {
			r.dropped.Add(1)
			return
		}
		if err := r.appendVariant(rec, si); err != nil {
			r.dropped.Add(1)
			r.failed(si.Stream, err)
		}
		return
	}
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

// appendVariant writes a variant's segment (and its init section the
// first time), each fsynced, then its playlist and the manifest. A
// segment whose source segment was not recorded is left out.
func (r *Recorder) appendVariant(rec *recording, si *packager.SegmentInfo) error {
	if !slices.ContainsFunc(rec.segs, func(s recSeg) bool { return s.msn == si.MSN }) {
		return nil
	}
	var v *recVariant
	for _, rv := range rec.variants {
		if rv.name == si.Variant {
			v = rv
		}
	}
	if v == nil {
		v = &recVariant{name: si.Variant, segs: map[int64]recSeg{}, inits: map[string]bool{}}
		rec.variants = append(rec.variants, v)
	}
	if !v.inits[si.Init.Name] {
		if err := atomicfile.WriteSynced(filepath.Join(rec.dir, si.Init.Name), si.Init.Body); err != nil {
			return err
		}
		v.inits[si.Init.Name] = true
		r.bytes.Add(int64(len(si.Init.Body)))
		rec.size += int64(len(si.Init.Body))
	}
	file := hlsname.VariantSegment(si.Variant, si.MSN)
	if err := atomicfile.WriteSynced(filepath.Join(rec.dir, file), si.Body); err != nil {
		return err
	}
	r.bytes.Add(int64(len(si.Body)))
	rec.size += int64(len(si.Body))
	v.segs[si.MSN] = recSeg{file: file, init: si.Init.Name, msn: si.MSN, pdt: si.PDT, dur: si.Duration}
	v.last = max(v.last, si.MSN)
	v.media.add(si)
	if err := atomicfile.Replace(filepath.Join(rec.dir, hlsname.VariantMedia(v.name)), rec.variantPlaylist(v, false)); err != nil {
		return err
	}
	b, err := rec.manifest(false).marshal()
	if err != nil {
		return err
	}
	return atomicfile.Replace(filepath.Join(rec.dir, manifestFile), b)
}

// add counts a segment in the rendition's figures.
func (m *media) add(si *packager.SegmentInfo) {
	if d := si.Duration.Seconds(); d > 0 {
		m.peak = max(m.peak, float64(len(si.Body)*8)/d)
	}
	m.bits += float64(len(si.Body) * 8)
	m.dur += si.Duration
	m.frames += si.Frames
	m.codecs, m.width, m.height = si.Init.Codecs, si.Init.Width, si.Init.Height
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
		file: file, init: si.Init.Name, msn: si.MSN, pdt: si.PDT, dur: si.Duration,
		disc: len(rec.segs) > 0 && (si.Discontinuity || rec.gap),
	})
	rec.gap = false
	rec.media.add(si)
	if err := r.flush(rec, false); err != nil {
		rec.segs = rec.segs[:len(rec.segs)-1]
		return err
	}
	return nil
}

// flush writes the playlist, then the manifest, each atomically; once
// ended, the variants' playlists too.
func (r *Recorder) flush(rec *recording, ended bool) error {
	if err := atomicfile.Replace(filepath.Join(rec.dir, playlistFile), rec.playlist(ended)); err != nil {
		return err
	}
	if ended {
		for _, v := range rec.variants {
			if err := atomicfile.Replace(filepath.Join(rec.dir, hlsname.VariantMedia(v.name)), rec.variantPlaylist(v, true)); err != nil {
				return err
			}
		}
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
	r.qmu.Lock() // gaps belongs to the queue's side
	delete(r.gaps, k)
	r.qmu.Unlock()
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

// playlist renders the source's media playlist: EVENT while it grows, VOD
// with EXT-X-ENDLIST once ended.
func (rec *recording) playlist(ended bool) []byte {
	return rec.render(rec.segs, nil, ended)
}

// variantPlaylist renders variant v's media playlist: the source's
// segments, with v's files where it has them and EXT-X-GAP where it has
// not, up to the last it has while recording (an EVENT playlist only
// grows: a gap listed cannot be filled later), to the end once ended.
func (rec *recording) variantPlaylist(v *recVariant, ended bool) []byte {
	segs := rec.segs
	if !ended {
		n := 0
		for n < len(segs) && segs[n].msn <= v.last {
			n++
		}
		segs = segs[:n]
	}
	return rec.render(segs, v, ended)
}

// render writes a media playlist of segs, as variant v's when v is not
// nil.
func (rec *recording) render(segs []recSeg, v *recVariant, ended bool) []byte {
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
	if v != nil {
		// A leading gap needs the map of the variant's first segment.
		for _, s := range segs {
			if vs, ok := v.segs[s.msn]; ok {
				lastInit = vs.init
				fmt.Fprintf(&b, "#EXT-X-MAP:URI=\"%s\"\n", lastInit)
				break
			}
		}
	}
	for _, s := range segs {
		gap := false
		if v != nil {
			vs, ok := v.segs[s.msn]
			vs.disc, vs.pdt, vs.dur = s.disc, s.pdt, s.dur
			if !ok {
				// RFC 8216bis 4.4.4.7: the segment is absent.
				vs.file, vs.init, gap = hlsname.VariantSegment(v.name, s.msn), lastInit, true
			}
			s = vs
		}
		if s.disc {
			b.WriteString("#EXT-X-DISCONTINUITY\n")
		}
		if s.init != lastInit {
			fmt.Fprintf(&b, "#EXT-X-MAP:URI=\"%s\"\n", s.init)
			lastInit = s.init
		}
		fmt.Fprintf(&b, "#EXT-X-PROGRAM-DATE-TIME:%s\n", s.pdt.UTC().Format(pdtLayout))
		if gap {
			b.WriteString("#EXT-X-GAP\n")
		}
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
	for _, v := range rec.variants {
		vi := Variant{Name: v.name, Playlist: hlsname.VariantMedia(v.name), Codecs: v.codecs,
			Width: v.width, Height: v.height, Bandwidth: int64(v.peak)}
		if s := v.dur.Seconds(); s > 0 {
			vi.AverageBandwidth = int64(v.bits / s)
			vi.FrameRate = math.Round(float64(v.frames)/s*1000) / 1000
		}
		m.Variants = append(m.Variants, vi)
	}
	slices.SortStableFunc(m.Variants, func(a, b Variant) int { return b.Height - a.Height })
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
