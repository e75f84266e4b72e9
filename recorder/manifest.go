package recorder

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shopcast/shopcast/internal/atomicfile"
	"github.com/shopcast/shopcast/internal/hlsname"
	"github.com/shopcast/shopcast/internal/streamname"
)

// Recording states.
const (
	StateRecording = "recording" // the stream is live; the playlist grows (EVENT)
	StateComplete  = "complete"  // EXT-X-ENDLIST (VOD)
)

// Manifest is a recording's manifest.json.
type Manifest struct {
	Stream string `json:"stream"`
	ID     string `json:"id"`
	State  string `json:"state"`
	// Start and End are the program date-times of the first media and the
	// end of the last segment.
	Start      time.Time `json:"start"`
	End        time.Time `json:"end"`
	DurationMs int64     `json:"duration_ms"`
	SizeBytes  int64     `json:"size_bytes"`
	Segments   int       `json:"segments"`
	// Discontinuities counts the reconnects (and the gaps of segments not
	// recorded) within the recording.
	Discontinuities int `json:"discontinuities"`
	// Codecs are the RFC 6381 codecs of the tracks, as live listed them.
	Codecs []string `json:"codecs"`
	Width  int      `json:"width,omitempty"`
	Height int      `json:"height,omitempty"`
	// Bandwidth and AverageBandwidth are the peak and average segment bit
	// rates, bits per second (RFC 8216bis 4.4.6.2).
	Bandwidth        int64   `json:"bandwidth"`
	AverageBandwidth int64   `json:"average_bandwidth"`
	FrameRate        float64 `json:"frame_rate,omitempty"`
	// Cues counts the cues listed as EXT-X-DATERANGE.
	Cues int `json:"cues"`
	// Recovered is set on a recording closed at start after a crash.
	Recovered bool `json:"recovered,omitempty"`
	// Variants are the ladder's other renditions (the figures above are the
	// source's), highest picture first as recorded.
	Variants []Variant `json:"variants,omitempty"`
}

// Variant is one more rendition of a recording's picture.
type Variant struct {
	Name string `json:"name"`
	// Playlist is its media playlist's file name, beside stream.m3u8.
	Playlist         string   `json:"playlist"`
	Codecs           []string `json:"codecs"`
	Width            int      `json:"width,omitempty"`
	Height           int      `json:"height,omitempty"`
	Bandwidth        int64    `json:"bandwidth"`
	AverageBandwidth int64    `json:"average_bandwidth"`
	FrameRate        float64  `json:"frame_rate,omitempty"`
}

func (m *Manifest) marshal() ([]byte, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	return append(b, '\n'), nil
}

func readManifest(dir string) (*Manifest, error) {
	b, err := os.ReadFile(filepath.Join(dir, manifestFile))
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", manifestFile, err)
	}
	return &m, nil
}

// validID matches recording ids (idLayout, with a suffix when two started
// within one second).
var validID = regexp.MustCompile(`^[0-9]{8}T[0-9]{6}Z(-[0-9]{1,2})?$`)

// recordingDirs lists NAME/ID directories under dir, by stream then id.
func recordingDirs(dir string) []string {
	var out []string
	streams, _ := os.ReadDir(dir)
	for _, s := range streams {
		if !s.IsDir() || !streamname.Valid(s.Name()) {
			continue
		}
		ids, _ := os.ReadDir(filepath.Join(dir, s.Name()))
		for _, id := range ids {
			if id.IsDir() && validID.MatchString(id.Name()) {
				out = append(out, filepath.Join(dir, s.Name(), id.Name()))
			}
		}
	}
	return out
}

// recover closes the recordings a crash left open: the playlist lists the
// segments fsynced before it was renamed into place, so it is playable as
// it is; it gets EXT-X-ENDLIST and becomes VOD, and the manifest is made
// again from it.
func (r *Recorder) recover() {
	for _, dir := range recordingDirs(r.cfg.Dir) {
		pl, err := os.ReadFile(filepath.Join(dir, playlistFile))
		if err != nil || bytes.Contains(pl, []byte("#EXT-X-ENDLIST")) {
			continue
		}
		closed := bytes.Replace(pl, []byte("#EXT-X-PLAYLIST-TYPE:EVENT\n"), []byte("#EXT-X-PLAYLIST-TYPE:VOD\n"), 1)
		closed = append(closed, "#EXT-X-ENDLIST\n"...)
		m, err := readManifest(dir)
		if err != nil {
			m = &Manifest{Stream: filepath.Base(filepath.Dir(dir)), ID: filepath.Base(dir)}
		}
		m.State, m.Recovered = StateComplete, true
		fromPlaylist(m, dir, closed)
		b, err := m.marshal()
		for _, v := range m.Variants {
			if !hlsname.ValidVariant(v.Name) || err != nil {
				continue
			}
			f := filepath.Join(dir, hlsname.VariantMedia(v.Name))
			if vp, rerr := os.ReadFile(f); rerr == nil && !bytes.Contains(vp, []byte("#EXT-X-ENDLIST")) {
				vp = bytes.Replace(vp, []byte("#EXT-X-PLAYLIST-TYPE:EVENT\n"), []byte("#EXT-X-PLAYLIST-TYPE:VOD\n"), 1)
				err = atomicfile.Replace(f, append(vp, "#EXT-X-ENDLIST\n"...))
			}
		}
		if err == nil {
			err = atomicfile.Replace(filepath.Join(dir, playlistFile), closed)
		}
		if err == nil {
			err = atomicfile.Replace(filepath.Join(dir, manifestFile), b)
		}
		if err != nil {
			r.log.Warn("recording left open by a crash not closed", "stream", m.Stream, "id", m.ID, "err", err)
			continue
		}
		r.log.Info("recording left open by a crash closed", "stream", m.Stream, "id", m.ID, "segments", m.Segments)
	}
}

// fromPlaylist sets what a manifest says of the media from the playlist,
// the one record of what was written completely.
func fromPlaylist(m *Manifest, dir string, pl []byte) {
	var dur time.Duration
	var size int64
	segs, discs, cues := 0, 0, 0
	var first, lastPDT time.Time
	var lastDur time.Duration
	sc := bufio.NewScanner(bytes.NewReader(pl))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "#EXTINF:"):
			v, _, _ := strings.Cut(strings.TrimPrefix(line, "#EXTINF:"), ",")
			f, _ := strconv.ParseFloat(v, 64)
			lastDur = time.Duration(f * float64(time.Second))
			dur += lastDur
			segs++
		case strings.HasPrefix(line, "#EXT-X-PROGRAM-DATE-TIME:"):
			t, err := time.Parse(pdtLayout, strings.TrimPrefix(line, "#EXT-X-PROGRAM-DATE-TIME:"))
			if err == nil {
				if first.IsZero() {
					first = t
				}
				lastPDT = t
			}
		case line == "#EXT-X-DISCONTINUITY":
			discs++
		case strings.HasPrefix(line, "#EXT-X-DATERANGE:"):
			cues++
		case strings.HasPrefix(line, "#EXT-X-MAP:URI="), line != "" && !strings.HasPrefix(line, "#"):
			name := strings.Trim(strings.TrimPrefix(line, "#EXT-X-MAP:URI="), `"`)
			if fi, err := os.Stat(filepath.Join(dir, filepath.Base(name))); err == nil {
				size += fi.Size()
			}
		}
	}
	m.DurationMs, m.SizeBytes, m.Segments, m.Discontinuities, m.Cues = dur.Milliseconds(), size, segs, discs, cues
	if !first.IsZero() {
		m.Start, m.End = first.UTC(), lastPDT.Add(lastDur).UTC()
	}
}

// sweep removes finished recordings that ended more than Retention ago.
func (r *Recorder) sweep() {
	if r.cfg.Retention <= 0 {
		return
	}
	horizon := time.Now().Add(-r.cfg.Retention)
	for _, dir := range recordingDirs(r.cfg.Dir) {
		m, err := readManifest(dir)
		if err != nil || m.State != StateComplete || m.End.IsZero() || !m.End.Before(horizon) {
			continue
		}
		if r.isActive(m.Stream + "/" + m.ID) {
			continue
		}
		if err := os.RemoveAll(dir); err != nil {
			r.log.Warn("old recording not removed", "stream", m.Stream, "id", m.ID, "err", err)
			continue
		}
		r.log.Info("old recording removed", "stream", m.Stream, "id", m.ID, "end", m.End)
	}
}

// List returns the manifests of every recording, newest start first.
func (r *Recorder) List() []*Manifest {
	var out []*Manifest
	for _, dir := range recordingDirs(r.cfg.Dir) {
		if m, err := readManifest(dir); err == nil {
			out = append(out, m)
		}
	}
	slices.SortFunc(out, func(a, b *Manifest) int {
		if c := b.Start.Compare(a.Start); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID) // started in the same second: the later id
	})
	return out
}

// URL is the path of a recording's multivariant playlist.
func (m *Manifest) URL() string {
	return "/recordings/" + m.Stream + "/" + m.ID + "/" + multivariantFile
}
