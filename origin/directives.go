package origin

import (
	"errors"
	"net/url"
	"strconv"
	"strings"

	"github.com/shopcast/shopcast/packager"
)

// The LL-HLS delivery directives (RFC 8216bis 6.2.5).
const (
	queryMSN  = "_HLS_msn"
	queryPart = "_HLS_part"
	querySkip = "_HLS_skip"
)

// errDirective is a malformed delivery directive: a 400.
var errDirective = errors.New("malformed delivery directive")

// parseDirectives reads the delivery directives of a media playlist request
// into req. Other query parameters, such as a CDN's cache busters, are
// ignored. A directive that is repeated, empty, not a non-negative decimal
// integer (_HLS_msn, _HLS_part) or not YES or v2 (_HLS_skip) is an error.
func parseDirectives(rawQuery string, req *packager.Request) error {
	req.MSN, req.Part, req.Skip = -1, -1, packager.SkipNone
	var seenSkip bool
	for rawQuery != "" {
		var pair string
		pair, rawQuery, _ = strings.Cut(rawQuery, "&")
		rawKey, rawValue, _ := strings.Cut(pair, "=")
		key, err := url.QueryUnescape(rawKey)
		if err != nil || !strings.HasPrefix(key, "_HLS_") {
			continue // not ours
		}
		value, err := url.QueryUnescape(rawValue)
		if err != nil {
			return errDirective
		}
		switch key {
		case queryMSN:
			if req.MSN >= 0 {
				return errDirective
			}
			if req.MSN, err = parseCount(value); err != nil {
				return err
			}
		case queryPart:
			if req.Part >= 0 {
				return errDirective
			}
			if req.Part, err = parseCount(value); err != nil {
				return err
			}
		case querySkip:
			if seenSkip {
				return errDirective
			}
			seenSkip = true
			// RFC 8216bis 6.2.5.1: the value is YES (skip segments) or v2
			// (skip segments and date ranges).
			switch value {
			case "YES":
				req.Skip = packager.SkipYes
			case "v2":
				req.Skip = packager.SkipV2
			default:
				return errDirective
			}
		}
	}
	// RFC 8216bis 6.2.5.2: _HLS_part without _HLS_msn is a 400.
	if req.Part >= 0 && req.MSN < 0 {
		return errDirective
	}
	return nil
}

// parseCount parses a decimal-integer (RFC 8216bis 4.2): digits only, no
// sign, within int64.
func parseCount(s string) (int64, error) {
	if s == "" {
		return 0, errDirective
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, errDirective
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, errDirective
	}
	return n, nil
}
