package packager

// The MPEG-TS writer of the legacy HLS rendition (ISO/IEC 13818-1).
//
// It is written here rather than with a library because neither library at
// hand can write the PMT that timed ID3 needs (Apple, "Timed Metadata for
// HTTP Live Streaming", section 3): a metadata_pointer_descriptor in the
// program_info loop and a metadata_descriptor on the stream_type 0x15
// stream. gomedia's muxer writes no descriptor loop at all; mediacommon's
// Writer (over go-astits) has no program descriptors and writes its 0x15
// streams as KLV ('KLVA', stream_id 0xFC with metadata AU cells). What is
// left, PAT, PMT and PES packetization, is short.

import "time"

const (
	tsPacketSize = 188
	tsPIDPAT     = 0x0000
	tsPIDPMT     = 0x1000
	// tsPIDFirstES is the PID of the first elementary stream; the others
	// follow in PMT order (video 0x100, audio 0x101, ID3 0x102 for a
	// publisher sending H.264 and AAC).
	tsPIDFirstES  = 0x0100
	tsProgramNum  = 1
	tsStreamIDVid = 0xE0
	tsStreamIDAud = 0xC0
	// tsStreamIDPrivate1 is private_stream_1, the stream_id of ID3 PES
	// packets (Apple, "Timed Metadata for HTTP Live Streaming", 3).
	tsStreamIDPrivate1 = 0xBD

	tsStreamTypeAAC      = 0x0F // ADTS AAC
	tsStreamTypeMetadata = 0x15 // metadata carried in PES packets
	tsStreamTypeH264     = 0x1B
	tsStreamTypeH265     = 0x24

	// tsPCRDelay is how far the PCR runs behind the DTS of the video frame
	// that carries it: the decoder's buffering time, 100 ms.
	tsPCRDelay = 9000

	tsClockMask = 1<<33 - 1
)

// tsTimeOffset is added to every media time to make a 90 kHz timestamp:
// TS PTS = (media time + 10 s) in 90 kHz ticks, modulo 2^33. The offset
// keeps the PCR, which runs 100 ms behind the first DTS, above zero on a
// stream whose media time starts at 0.
const tsTimeOffset = 10 * time.Second

// clock90k converts a duration to 90 kHz ticks, rounding to the nearest.
func clock90k(d time.Duration) int64 {
	if d < 0 {
		return -clock90k(-d)
	}
	return (int64(d)*9 + 50000) / 100000
}

// tsScale converts a time in a track timescale to 90 kHz ticks, rounding
// to the nearest (exact for 90 kHz video and 48 kHz audio).
func tsScale(v uint64, timescale uint32) int64 {
	if timescale == 90000 {
		return int64(v)
	}
	return int64((v*90000 + uint64(timescale)/2) / uint64(timescale))
}

// The 'ID3 ' descriptors (Apple, "Timed Metadata for HTTP Live Streaming",
// 3; ISO/IEC 13818-1 2.6.58 and 2.6.60). metadata_application_format
// 0xFFFF and metadata_format 0xFF say that the 'ID3 ' identifiers follow.
var (
	// metadata_pointer_descriptor, in program_info: tag 0x25, length 15,
	// metadata_service_id 0, metadata_locator_record_flag 0,
	// MPEG_carriage_flags 0 (same program), program_number 1.
	tsMetadataPointerDescriptor = []byte{
		0x25, 15,
		0xFF, 0xFF, 'I', 'D', '3', ' ',
		0xFF, 'I', 'D', '3', ' ',
		0x00,
		0x1F,
		0x00, tsProgramNum,
	}
	// metadata_descriptor, in the ID3 stream's ES_info: tag 0x26, length 13,
	// metadata_service_id 0, decoder_config_flags 000, DSM-CC_flag 0.
	tsMetadataDescriptor = []byte{
		0x26, 13,
		0xFF, 0xFF, 'I', 'D', '3', ' ',
		0xFF, 'I', 'D', '3', ' ',
		0x00,
		0x0F,
	}
)

// tsES is an elementary stream of the program.
type tsES struct {
	pid         uint16
	streamType  byte
	descriptors []byte
	cc          byte // continuity counter of the next packet
}

// tsMuxer writes the transport stream of one stream, segment after
// segment: continuity counters and the PMT version carry across segments
// so that the segments played in a row are one valid transport stream.
type tsMuxer struct {
	es         []*tsES
	pcrPID     uint16
	patCC      byte
	pmtCC      byte
	pmtVersion byte
	pmt        []byte // the last PMT section, to bump the version on change
	pesBuf     []byte // scratch for one PES packet
}

// setStreams replaces the program's elementary streams.
func (m *tsMuxer) setStreams(es []*tsES, pcrPID uint16) {
	m.es, m.pcrPID = es, pcrPID
}

// writeTables appends a PAT and a PMT: every segment starts with them so
// that a player can start at any segment.
func (m *tsMuxer) writeTables(b []byte) []byte {
	// PAT: one program, number 1, its PMT on tsPIDPMT.
	pat := psiSection(0x00, 1, 0, []byte{0x00, tsProgramNum, 0xE0 | tsPIDPMT>>8, tsPIDPMT & 0xFF})
	b = appendPSI(b, tsPIDPAT, &m.patCC, pat)

	body := []byte{0xE0 | byte(m.pcrPID>>8), byte(m.pcrPID)}
	body = append(body, 0xF0|byte(len(tsMetadataPointerDescriptor)>>8), byte(len(tsMetadataPointerDescriptor)))
	body = append(body, tsMetadataPointerDescriptor...)
	for _, es := range m.es {
		body = append(body, es.streamType, 0xE0|byte(es.pid>>8), byte(es.pid),
			0xF0|byte(len(es.descriptors)>>8), byte(len(es.descriptors)))
		body = append(body, es.descriptors...)
	}
	pmt := psiSection(0x02, tsProgramNum, m.pmtVersion, body)
	if m.pmt != nil && string(m.pmt) != string(pmt) {
		// ISO/IEC 13818-1 2.4.4.5: version_number changes with the content.
		m.pmtVersion = (m.pmtVersion + 1) & 0x1F
		pmt = psiSection(0x02, tsProgramNum, m.pmtVersion, body)
	}
	m.pmt = pmt
	return appendPSI(b, tsPIDPMT, &m.pmtCC, pmt)
}

// psiSection returns a long-form PSI section with its CRC.
func psiSection(tableID byte, idExt uint16, version byte, body []byte) []byte {
	n := 5 + len(body) + 4 // section_length counts from after itself
	s := make([]byte, 0, 3+n)
	s = append(s, tableID, 0xB0|byte(n>>8), byte(n),
		byte(idExt>>8), byte(idExt), 0xC1|version<<1, 0x00, 0x00)
	s = append(s, body...)
	c := crc32MPEG2(s)
	return append(s, byte(c>>24), byte(c>>16), byte(c>>8), byte(c))
}

// appendPSI appends one TS packet holding a section (sections here are far
// smaller than a packet): pointer_field 0, the section, 0xFF stuffing.
func appendPSI(b []byte, pid uint16, cc *byte, section []byte) []byte {
	var p [tsPacketSize]byte
	p[0], p[1], p[2], p[3] = 0x47, 0x40|byte(pid>>8), byte(pid), 0x10|*cc
	*cc = (*cc + 1) & 0x0F
	p[4] = 0
	n := copy(p[5:], section)
	for i := 5 + n; i < tsPacketSize; i++ {
		p[i] = 0xFF
	}
	return append(b, p[:]...)
}

// pesHeader appends a PES header with PTS (and DTS when dts >= 0 and
// differs) to b, for a payload of n bytes. Video PES packets larger than
// the 16-bit length field have length 0 (unbounded, ISO/IEC 13818-1
// 2.4.3.7, allowed for video only); ok is false for any other stream.
func pesHeader(b []byte, streamID byte, pts, dts int64, n int) ([]byte, bool) {
	hdrLen := 5
	if dts >= 0 && dts != pts {
		hdrLen = 10
	}
	length := 3 + hdrLen + n
	if length > 0xFFFF {
		if streamID != tsStreamIDVid {
			return b, false
		}
		length = 0
	}
	// '10', not scrambled, data_alignment_indicator 1: every PES starts
	// with an access unit (an AUD, an ADTS header, an ID3 tag).
	b = append(b, 0, 0, 1, streamID, byte(length>>8), byte(length), 0x84)
	if hdrLen == 10 {
		b = append(b, 0xC0, 10)
		b = appendTimestamp(b, 0x3, pts)
		b = appendTimestamp(b, 0x1, dts)
	} else {
		b = append(b, 0x80, 5)
		b = appendTimestamp(b, 0x2, pts)
	}
	return b, true
}

func appendTimestamp(b []byte, prefix byte, ts int64) []byte {
	ts &= tsClockMask
	return append(b,
		prefix<<4|byte(ts>>29)&0x0E|1,
		byte(ts>>22), byte(ts>>14)|1,
		byte(ts>>7), byte(ts<<1)|1)
}

// packetize appends a PES packet split into TS packets of stream es. The
// first packet carries the random_access_indicator when rai is set and
// the PCR when pcr >= 0; the last is padded with adaptation field stuffing.
func (m *tsMuxer) packetize(b []byte, es *tsES, pes []byte, pcr int64, rai bool) []byte {
	first := true
	for len(pes) > 0 {
		var p [tsPacketSize]byte
		var af [8]byte // flags and PCR
		afn := 0
		if first && (rai || pcr >= 0) {
			if rai {
				af[0] |= 0x40
			}
			afn = 1
			if pcr >= 0 {
				pcr &= tsClockMask
				af[0] |= 0x10
				af[1], af[2], af[3], af[4] = byte(pcr>>25), byte(pcr>>17), byte(pcr>>9), byte(pcr>>1)
				af[5], af[6] = byte(pcr<<7)|0x7E, 0
				afn = 7
			}
		}
		space := tsPacketSize - 4
		if afn > 0 {
			space -= 1 + afn
		}
		n := min(space, len(pes))
		stuff := space - n
		hasAF := afn > 0 || stuff > 0
		if afn == 0 && stuff > 0 {
			// An adaptation field only for stuffing: its length byte, then
			// (when there is room) a flags byte, then 0xFF bytes.
			stuff--
			if stuff > 0 {
				afn = 1
				stuff--
			}
		}
		p[0] = 0x47
		p[1] = byte(es.pid>>8) & 0x1F
		if first {
			p[1] |= 0x40
		}
		p[2] = byte(es.pid)
		p[3] = 0x10 | es.cc
		if hasAF {
			p[3] |= 0x20
		}
		es.cc = (es.cc + 1) & 0x0F
		i := 4
		if hasAF {
			p[4] = byte(afn + stuff)
			i = 5 + copy(p[5:], af[:afn])
			for range stuff {
				p[i] = 0xFF
				i++
			}
		}
		copy(p[i:], pes[:n])
		pes = pes[n:]
		b = append(b, p[:]...)
		first = false
	}
	return b
}

// crc32MPEG2 is the CRC of PSI sections (ISO/IEC 13818-1 annex A):
// polynomial 0x04C11DB7, initial value 0xFFFFFFFF, no reflection. Bit by
// bit: it runs over two short sections per segment.
func crc32MPEG2(b []byte) uint32 {
	c := uint32(0xFFFFFFFF)
	for _, v := range b {
		c ^= uint32(v) << 24
		for range 8 {
			if c&0x80000000 != 0 {
				c = c<<1 ^ 0x04C11DB7
			} else {
				c <<= 1
			}
		}
	}
	return c
}
