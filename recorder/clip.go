package recorder

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"
)

// errClipTooLarge is a clip over Config.MaxClipBytes.
var errClipTooLarge = errors.New("clip too large")

// listedSegment is a segment as the recording's playlist lists it, with
// its place in the playback timeline.
type listedSegment struct {
	file, init string
	start, dur time.Duration
}

// listedSegments reads the recording's playlist, the record of what was
// written completely.
func listedSegments(pl []byte) []listedSegment {
	var out []listedSegment
	var init string
	var at, dur time.Duration
	sc := bufio.NewScanner(bytes.NewReader(pl))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "#EXT-X-MAP:URI="):
			init = strings.Trim(strings.TrimPrefix(line, "#EXT-X-MAP:URI="), `"`)
		case strings.HasPrefix(line, "#EXTINF:"):
			v, _, _ := strings.Cut(strings.TrimPrefix(line, "#EXTINF:"), ",")
			f, _ := strconv.ParseFloat(v, 64)
			dur = time.Duration(f * float64(time.Second))
		case line != "" && !strings.HasPrefix(line, "#"):
			out = append(out, listedSegment{file: line, init: init, start: at, dur: dur})
			at += dur
		}
	}
	return out
}

// serveClip answers one product's presentation as a single MP4 file: the
// init section and the recorded segments from the keyframe at or before
// the cue's start to the one at or after its end (whole segments: each
// starts on a keyframe), their decode times rebased to start at zero and
// their emsg boxes left out (their times would no longer hold). Nothing
// is re-encoded. A clip stops at a reconnect's new init section.
func (r *Recorder) serveClip(w http.ResponseWriter, req *http.Request, dir string) {
	id, ok := strings.CutSuffix(req.PathValue("file"), ".mp4")
	if !ok {
		http.NotFound(w, req)
		return
	}
	var cues []CueEntry
	b, err := os.ReadFile(filepath.Join(dir, cuesFile))
	if err == nil {
		err = json.Unmarshal(b, &cues)
	}
	var cue *CueEntry
	for i := range cues {
		if cues[i].ID == id {
			cue = &cues[i]
		}
	}
	pl, perr := os.ReadFile(filepath.Join(dir, playlistFile))
	if err != nil || perr != nil || cue == nil {
		http.NotFound(w, req)
		return
	}
	segs := listedSegments(pl)
	start := time.Duration(cue.OffsetMs) * time.Millisecond
	end := start + time.Duration(cue.DurationMs)*time.Millisecond
	if cue.DurationMs == 0 && len(segs) > 0 {
		end = segs[len(segs)-1].start + segs[len(segs)-1].dur // open until the end
	}
	var chosen []listedSegment
	for _, s := range segs {
		if s.start+s.dur <= start || s.start >= end && len(chosen) > 0 {
			continue
		}
		if len(chosen) > 0 && s.init != chosen[0].init {
			break
		}
		chosen = append(chosen, s)
	}
	if len(chosen) == 0 {
		http.NotFound(w, req)
		return
	}
	body, err := r.clip(dir, chosen)
	switch {
	case errors.Is(err, errClipTooLarge):
		http.Error(w, "clip too large", http.StatusRequestEntityTooLarge)
		return
	case err != nil:
		r.log.Warn("clip not built", "stream", req.PathValue("name"), "id", req.PathValue("id"), "cue", id, "err", err)
		http.Error(w, "clip not built", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "video/mp4")
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s-%s-%s.mp4"`, req.PathValue("name"), req.PathValue("id"), safeFileName(id)))
	h.Set("Access-Control-Allow-Origin", r.cfg.CORSOrigin)
	h.Set("Cache-Control", cacheGrowing)
	if closedPlaylistBytes(pl) {
		h.Set("Cache-Control", cacheImmutable)
	}
	http.ServeContent(w, req, "", time.Time{}, bytes.NewReader(body))
}

// clip concatenates the init section and the segments, rebased.
func (r *Recorder) clip(dir string, segs []listedSegment) ([]byte, error) {
	init, err := os.ReadFile(filepath.Join(dir, filepath.Base(segs[0].init)))
	if err != nil {
		return nil, err
	}
	base, err := clipBase(dir, init, segs[0])
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	out.Write(init)
	for _, s := range segs {
		b, err := os.ReadFile(filepath.Join(dir, filepath.Base(s.file)))
		if err != nil {
			return nil, err
		}
		if err := rebase(&out, b, base); err != nil {
			return nil, fmt.Errorf("%s: %w", s.file, err)
		}
		if out.Len() > r.cfg.MaxClipBytes {
			return nil, errClipTooLarge
		}
	}
	return out.Bytes(), nil
}

// clipBase is the decode time every track of a clip starts from: the
// video track's first (the one a clip must start with, a keyframe), in
// each track's timescale, so the tracks keep their sync.
func clipBase(dir string, init []byte, first listedSegment) (map[uint32]uint64, error) {
	f, err := mp4.DecodeFile(bytes.NewReader(init))
	if err != nil || f.Init == nil {
		return nil, fmt.Errorf("init: %v", err)
	}
	timescale := map[uint32]uint64{}
	var lead uint32
	for _, trak := range f.Init.Moov.Traks {
		id := trak.Tkhd.TrackID
		timescale[id] = uint64(max(trak.Mdia.Mdhd.Timescale, 1))
		if lead == 0 || trak.Mdia.Hdlr.HandlerType == "vide" {
			lead = id
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, filepath.Base(first.file)))
	if err != nil {
		return nil, err
	}
	firsts := map[uint32]uint64{}
	var scratch bytes.Buffer
	if err := rebase(&scratch, b, firsts); err != nil {
		return nil, fmt.Errorf("%s: %w", first.file, err)
	}
	t, ok := firsts[lead]
	if !ok {
		return nil, fmt.Errorf("%s: no fragment of track %d", first.file, lead)
	}
	base := map[uint32]uint64{}
	for id, ts := range timescale {
		base[id] = t * ts / timescale[lead]
	}
	return base, nil
}

// rebase appends a segment's top-level boxes to out but its emsg boxes,
// each tfdt made relative to base (set from the first one of each track).
// The tfdt values are rewritten in place, in their own width, so no box
// changes size and the trun data offsets (relative to their moof) hold.
func rebase(out *bytes.Buffer, seg []byte, base map[uint32]uint64) error {
	start := out.Len()
	for rest := seg; len(rest) > 0; {
		typ, size, err := boxHeader(rest)
		if err != nil {
			return err
		}
		if typ != "emsg" {
			out.Write(rest[:size])
		}
		if typ == "moof" {
			moof := out.Bytes()[out.Len()-size:]
			if err := children(moof[8:], "traf", func(traf []byte) error { return rebaseTraf(traf, base) }); err != nil {
				return err
			}
		}
		rest = rest[size:]
	}
	if out.Len() == start {
		return errors.New("empty segment")
	}
	return nil
}

// rebaseTraf rewrites the tfdt of one traf (its payload, after the
// header).
func rebaseTraf(traf []byte, base map[uint32]uint64) error {
	var id uint32
	found := false
	err := children(traf, "", func(b []byte) error {
		switch string(b[4:8]) {
		case "tfhd":
			if len(b) < 16 {
				return errors.New("short tfhd")
			}
			id, found = binary.BigEndian.Uint32(b[12:16]), true
		case "tfdt":
			if !found {
				return errors.New("tfdt before tfhd")
			}
			v := b[8] // version
			switch {
			case v == 1 && len(b) >= 20:
				t := binary.BigEndian.Uint64(b[12:20])
				if _, ok := base[id]; !ok {
					base[id] = t
				}
				binary.BigEndian.PutUint64(b[12:20], t-min(base[id], t))
			case v == 0 && len(b) >= 16:
				t := uint64(binary.BigEndian.Uint32(b[12:16]))
				if _, ok := base[id]; !ok {
					base[id] = t
				}
				binary.BigEndian.PutUint32(b[12:16], uint32(t-min(base[id], t)))
			default:
				return errors.New("bad tfdt")
			}
		}
		return nil
	})
	return err
}

// children calls f with each child box (header included) of a box's
// payload, or only those of type typ when set.
func children(payload []byte, typ string, f func([]byte) error) error {
	for rest := payload; len(rest) > 0; {
		t, size, err := boxHeader(rest)
		if err != nil {
			return err
		}
		if typ == "" || t == typ {
			box := rest[:size]
			if t == typ {
				box = rest[8:size] // a container's payload
			}
			if err := f(box); err != nil {
				return err
			}
		}
		rest = rest[size:]
	}
	return nil
}

// boxHeader reads an ISO BMFF box header (32-bit sizes: the packager
// writes no larger box).
func boxHeader(b []byte) (typ string, size int, err error) {
	if len(b) < 8 {
		return "", 0, errors.New("truncated box")
	}
	n := binary.BigEndian.Uint32(b)
	if n < 8 || int64(n) > int64(len(b)) {
		return "", 0, fmt.Errorf("box size %d of %d bytes", n, len(b))
	}
	return string(b[4:8]), int(n), nil
}

func closedPlaylistBytes(pl []byte) bool { return bytes.HasSuffix(pl, []byte("#EXT-X-ENDLIST\n")) }

// safeFileName keeps a cue id to the characters a file name may hold
// anywhere.
func safeFileName(s string) string {
	return strings.Map(func(c rune) rune {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '.':
			return c
		}
		return '_'
	}, s)
}
