package ingest

import (
	"github.com/bluenviron/gortmplib/pkg/amf0"
)

// maxAMFDepth bounds the nesting convertAMF follows; deeper values become
// nil. gortmplib's decoder already bounds what it reads by the message size.
const maxAMFDepth = 32

// convertAMF turns a value decoded by gortmplib's AMF0 decoder into plain Go
// values, so that Data does not tie its readers to gortmplib (RTSP and
// future ingests have no AMF): numbers are float64, strings string, booleans
// bool, null and undefined nil, objects and ECMA arrays map[string]any,
// strict arrays []any.
func convertAMF(v any) any {
	return convertAMFDepth(v, 0)
}

func convertAMFDepth(v any, depth int) any {
	if depth > maxAMFDepth {
		return nil
	}
	switch v := v.(type) {
	case float64, string, bool:
		return v
	case amf0.Object:
		return convertAMFObject(v, depth)
	case amf0.ECMAArray:
		return convertAMFObject(amf0.Object(v), depth)
	case amf0.StrictArray:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = convertAMFDepth(e, depth+1)
		}
		return out
	default: // nil, amf0.Undefined
		return nil
	}
}

func convertAMFObject(o amf0.Object, depth int) map[string]any {
	out := make(map[string]any, len(o))
	for _, e := range o {
		out[e.Key] = convertAMFDepth(e.Value, depth+1)
	}
	return out
}
