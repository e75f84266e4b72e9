package cues

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf16"
	"unicode/utf8"
)

// ID3Description is the TXXX description of every shopcast ID3 frame.
const ID3Description = "shopcast"

// Errors of the ID3 decoder. Each decoding error wraps ErrID3.
var (
	// ErrID3 is a tag that is not well-formed ID3v2.3 or v2.4.
	ErrID3 = errors.New("invalid ID3 tag")
	// ErrID3Unsupported is a well-formed tag using a feature the decoder
	// does not read (unsynchronisation, compressed or encrypted frames).
	ErrID3Unsupported = fmt.Errorf("%w: unsupported feature", ErrID3)
)

const maxSynchsafe = 1<<28 - 1

// EncodeID3 returns an ID3v2.4 tag holding one TXXX frame:
//
//	"ID3" 04 00 | flags 00 | tag size (4 bytes, synchsafe)
//	"TXXX" | frame size (4 bytes, synchsafe) | frame flags 00 00
//	03 (UTF-8) | description | 00 | value
//
// The value has no terminator. Description and value must be UTF-8 without
// NUL bytes (a cue's compact JSON always is).
func EncodeID3(description string, value []byte) ([]byte, error) {
	if !utf8.ValidString(description) || !utf8.Valid(value) {
		return nil, errors.New("id3: description and value must be UTF-8")
	}
	if bytes.IndexByte([]byte(description), 0) >= 0 || bytes.IndexByte(value, 0) >= 0 {
		return nil, errors.New("id3: description and value must not contain NUL")
	}
	frameSize := 1 + len(description) + 1 + len(value)
	tagSize := 10 + frameSize
	if tagSize > maxSynchsafe {
		return nil, errors.New("id3: value too large")
	}
	b := make([]byte, 0, 10+tagSize)
	b = append(b, 'I', 'D', '3', 4, 0, 0)
	b = appendSynchsafe(b, tagSize)
	b = append(b, 'T', 'X', 'X', 'X')
	b = appendSynchsafe(b, frameSize)
	b = append(b, 0, 0, 3)
	b = append(b, description...)
	b = append(b, 0)
	b = append(b, value...)
	return b, nil
}

// appendSynchsafe appends n as a 28-bit synchsafe integer: four bytes of
// seven bits each, most significant first (ID3v2.4 section 6.2).
func appendSynchsafe(b []byte, n int) []byte {
	return append(b, byte(n>>21)&0x7f, byte(n>>14)&0x7f, byte(n>>7)&0x7f, byte(n)&0x7f)
}

func readSynchsafe(b []byte) (int, bool) {
	n := 0
	for _, c := range b[:4] {
		if c&0x80 != 0 {
			return 0, false
		}
		n = n<<7 | int(c)
	}
	return n, true
}

// TXXX is a user-defined text information frame.
type TXXX struct {
	Description string
	Value       string
}

// DecodeID3 returns the TXXX frames of an ID3v2.3 or v2.4 tag at the start
// of b, skipping other frames. It reads text encodings 0 (ISO-8859-1),
// 1 (UTF-16 with BOM), 2 (UTF-16BE) and 3 (UTF-8), and drops one trailing
// terminator from the value. It never panics; errors wrap ErrID3.
func DecodeID3(b []byte) ([]TXXX, error) {
	if len(b) < 10 || string(b[:3]) != "ID3" {
		return nil, fmt.Errorf("%w: no ID3 header", ErrID3)
	}
	ver, flags := b[3], b[5]
	if ver != 3 && ver != 4 {
		return nil, fmt.Errorf("%w: version 2.%d", ErrID3Unsupported, ver)
	}
	if flags&0x80 != 0 {
		return nil, fmt.Errorf("%w: unsynchronisation", ErrID3Unsupported)
	}
	size, ok := readSynchsafe(b[6:10])
	if !ok {
		return nil, fmt.Errorf("%w: tag size is not synchsafe", ErrID3)
	}
	if size > len(b)-10 {
		return nil, fmt.Errorf("%w: tag size %d exceeds the %d bytes given", ErrID3, size, len(b)-10)
	}
	body := b[10 : 10+size]
	if flags&0x40 != 0 { // extended header
		if len(body) < 4 {
			return nil, fmt.Errorf("%w: truncated extended header", ErrID3)
		}
		var n int
		if ver == 4 { // synchsafe, counts itself
			n, ok = readSynchsafe(body)
			if !ok || n < 6 {
				return nil, fmt.Errorf("%w: bad extended header size", ErrID3)
			}
		} else { // plain, excludes its own 4 size bytes
			n = int(binary.BigEndian.Uint32(body)) + 4
		}
		if n < 0 || n > len(body) {
			return nil, fmt.Errorf("%w: extended header size %d", ErrID3, n)
		}
		body = body[n:]
	}
	var out []TXXX
	for len(body) >= 10 {
		if body[0] == 0 { // padding
			break
		}
		id := body[:4]
		for _, c := range id {
			if (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
				return nil, fmt.Errorf("%w: bad frame id %q", ErrID3, id)
			}
		}
		var n int
		if ver == 4 {
			if n, ok = readSynchsafe(body[4:8]); !ok {
				return nil, fmt.Errorf("%w: frame size is not synchsafe", ErrID3)
			}
		} else {
			n = int(binary.BigEndian.Uint32(body[4:8]) & 0x7fffffff)
		}
		fflags := binary.BigEndian.Uint16(body[8:10])
		body = body[10:]
		if n > len(body) {
			return nil, fmt.Errorf("%w: frame %s size %d exceeds the tag", ErrID3, id, n)
		}
		data := body[:n]
		body = body[n:]
		if string(id) != "TXXX" {
			continue
		}
		// v2.4 format flags: compression 0x08, encryption 0x04,
		// unsynchronisation 0x02; v2.3: compression 0x80, encryption 0x40.
		if (ver == 4 && fflags&0x000e != 0) || (ver == 3 && fflags&0x00c0 != 0) {
			return nil, fmt.Errorf("%w: encoded TXXX frame", ErrID3Unsupported)
		}
		if ver == 4 && fflags&0x0001 != 0 { // data length indicator
			if len(data) < 4 {
				return nil, fmt.Errorf("%w: truncated data length indicator", ErrID3)
			}
			data = data[4:]
		}
		f, err := decodeTXXX(data)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

func decodeTXXX(data []byte) (TXXX, error) {
	if len(data) < 1 {
		return TXXX{}, fmt.Errorf("%w: empty TXXX frame", ErrID3)
	}
	enc, data := data[0], data[1:]
	switch enc {
	case 0, 3:
		i := bytes.IndexByte(data, 0)
		if i < 0 {
			return TXXX{}, fmt.Errorf("%w: TXXX description not terminated", ErrID3)
		}
		desc, val := data[:i], data[i+1:]
		val = bytes.TrimSuffix(val, []byte{0})
		if enc == 0 {
			return TXXX{latin1(desc), latin1(val)}, nil
		}
		if !utf8.Valid(desc) || !utf8.Valid(val) {
			return TXXX{}, fmt.Errorf("%w: TXXX text is not UTF-8", ErrID3)
		}
		return TXXX{string(desc), string(val)}, nil
	case 1, 2:
		i := 0
		for ; i+1 < len(data); i += 2 {
			if data[i] == 0 && data[i+1] == 0 {
				break
			}
		}
		if i+1 >= len(data) {
			return TXXX{}, fmt.Errorf("%w: TXXX description not terminated", ErrID3)
		}
		desc, val := data[:i], data[i+2:]
		if len(val) >= 2 && len(val)%2 == 0 && val[len(val)-1] == 0 && val[len(val)-2] == 0 {
			val = val[:len(val)-2]
		}
		d, err := utf16Text(desc, enc == 2)
		if err != nil {
			return TXXX{}, err
		}
		v, err := utf16Text(val, enc == 2)
		if err != nil {
			return TXXX{}, err
		}
		return TXXX{d, v}, nil
	default:
		return TXXX{}, fmt.Errorf("%w: text encoding %d", ErrID3, enc)
	}
}

func latin1(b []byte) string {
	r := make([]rune, len(b))
	for i, c := range b {
		r[i] = rune(c)
	}
	return string(r)
}

// utf16Text decodes UTF-16: big-endian without a BOM when be (encoding 2),
// else after a byte order mark (encoding 1).
func utf16Text(b []byte, be bool) (string, error) {
	if len(b)%2 != 0 {
		return "", fmt.Errorf("%w: odd UTF-16 length", ErrID3)
	}
	if !be {
		if len(b) == 0 {
			return "", nil
		}
		if len(b) < 2 {
			return "", fmt.Errorf("%w: missing BOM", ErrID3)
		}
		switch {
		case b[0] == 0xfe && b[1] == 0xff:
			be = true
		case b[0] == 0xff && b[1] == 0xfe:
		default:
			return "", fmt.Errorf("%w: missing BOM", ErrID3)
		}
		b = b[2:]
	}
	u := make([]uint16, len(b)/2)
	for i := range u {
		if be {
			u[i] = binary.BigEndian.Uint16(b[2*i:])
		} else {
			u[i] = binary.LittleEndian.Uint16(b[2*i:])
		}
	}
	return string(utf16.Decode(u)), nil
}
