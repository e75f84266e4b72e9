package testpub

import (
	"encoding/binary"
	"fmt"
	"math"
	"sort"
)

// ECMAArray is encoded as an AMF0 ECMA array (the form onMetaData uses);
// a plain map[string]any is encoded as an AMF0 object.
type ECMAArray map[string]any

// AMF0 markers, AMF0 specification section 2.1.
const (
	amfNumber      = 0x00
	amfBoolean     = 0x01
	amfString      = 0x02
	amfObject      = 0x03
	amfNull        = 0x05
	amfECMAArray   = 0x08
	amfObjectEnd   = 0x09
	amfStrictArray = 0x0a
	amfLongString  = 0x0c
)

// encodeAMF0 encodes values one after the other, as in the body of an AMF0
// data message. gomedia has an AMF0 encoder but does not export it.
//
// Numbers (any Go integer or float type) become AMF0 numbers, strings
// strings, bools booleans, nil null, map[string]any objects (keys sorted, so
// the bytes are reproducible), ECMAArray ECMA arrays, []any strict arrays.
func encodeAMF0(values ...any) ([]byte, error) {
	var buf []byte
	for _, v := range values {
		var err error
		buf, err = appendAMF0(buf, v)
		if err != nil {
			return nil, err
		}
	}
	return buf, nil
}

func appendAMF0(buf []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(buf, amfNull), nil
	case bool:
		b := byte(0)
		if v {
			b = 1
		}
		return append(buf, amfBoolean, b), nil
	case string:
		if len(v) > math.MaxUint16 {
			buf = append(buf, amfLongString)
			buf = binary.BigEndian.AppendUint32(buf, uint32(len(v)))
			return append(buf, v...), nil
		}
		return appendAMFString(append(buf, amfString), v), nil
	case float64:
		return binary.BigEndian.AppendUint64(append(buf, amfNumber), math.Float64bits(v)), nil
	case float32:
		return appendAMF0(buf, float64(v))
	case int:
		return appendAMF0(buf, float64(v))
	case int64:
		return appendAMF0(buf, float64(v))
	case int32:
		return appendAMF0(buf, float64(v))
	case uint32:
		return appendAMF0(buf, float64(v))
	case map[string]any:
		return appendAMFProperties(append(buf, amfObject), v)
	case ECMAArray:
		buf = append(buf, amfECMAArray)
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(v)))
		return appendAMFProperties(buf, v)
	case []any:
		buf = append(buf, amfStrictArray)
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(v)))
		for _, e := range v {
			var err error
			buf, err = appendAMF0(buf, e)
			if err != nil {
				return nil, err
			}
		}
		return buf, nil
	default:
		return nil, fmt.Errorf("amf0: cannot encode %T", v)
	}
}

// appendAMFString appends a UTF-8 string without marker (u16 length first),
// the form of strings and of object keys. Keys are short; longer strings are
// cut at 65535 bytes.
func appendAMFString(buf []byte, s string) []byte {
	if len(s) > math.MaxUint16 {
		s = s[:math.MaxUint16]
	}
	buf = binary.BigEndian.AppendUint16(buf, uint16(len(s)))
	return append(buf, s...)
}

func appendAMFProperties(buf []byte, m map[string]any) ([]byte, error) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		buf = appendAMFString(buf, k)
		var err error
		buf, err = appendAMF0(buf, m[k])
		if err != nil {
			return nil, err
		}
	}
	// Empty key, then the object-end marker.
	return append(buf, 0, 0, amfObjectEnd), nil
}
