package packager

import (
	"bytes"
	"encoding/binary"
	"errors"
)

// errShortNALU is a video sample whose NAL unit lengths do not add up.
var errShortNALU = errors.New("mpeg-ts: malformed length-prefixed NAL unit")

// schemeID3 is the emsg scheme_id_uri of ID3 timed metadata in CMAF (AOM,
// "Carriage of ID3 Timed Metadata in CMAF", 3).
const schemeID3 = "https://aomedia.org/emsg/ID3"

// emsgID3 returns the ID3 tag an event's emsg box carries (its
// message_data), or nil if b is not one emsg box of the ID3 scheme. The TS
// rendition sends these bytes as the ID3 PES, so both renditions carry the
// same tag without a second builder.
//
// ISO/IEC 23009-1 5.10.3.3: version 0 has scheme_id_uri, value,
// timescale, presentation_time_delta, event_duration, id; version 1 has
// timescale, presentation_time (64 bits), event_duration, id,
// scheme_id_uri, value; message_data fills the rest of the box.
func emsgID3(b []byte) []byte {
	if len(b) < 12 || string(b[4:8]) != "emsg" {
		return nil
	}
	size := binary.BigEndian.Uint32(b)
	if size < 12 || uint64(size) > uint64(len(b)) {
		return nil
	}
	body := b[12:size]
	cstring := func() (string, bool) {
		i := bytes.IndexByte(body, 0)
		if i < 0 {
			return "", false
		}
		s := string(body[:i])
		body = body[i+1:]
		return s, true
	}
	var scheme string
	var ok bool
	switch b[8] {
	case 0:
		if scheme, ok = cstring(); !ok {
			return nil
		}
		if _, ok = cstring(); !ok || len(body) < 16 {
			return nil
		}
		body = body[16:]
	case 1:
		if len(body) < 20 {
			return nil
		}
		body = body[20:]
		if scheme, ok = cstring(); !ok {
			return nil
		}
		if _, ok = cstring(); !ok {
			return nil
		}
	default:
		return nil
	}
	if scheme != schemeID3 || len(body) == 0 {
		return nil
	}
	return body
}
