package ingest

import (
	"errors"
	"net/url"
	"strings"
)

// rtmpApp is the only RTMP application shopcast accepts:
// rtmp://HOST:1935/live/KEY.
const rtmpApp = "live"

var (
	errBadApp = errors.New("application is not \"" + rtmpApp + "\"")
	errNoKey  = errors.New("no stream key")
)

// streamKeyFromURL returns the stream key of a publish URL.
//
// gortmplib builds the URL by joining the connect command's tcUrl with the
// publish command's stream name. OBS sends its "Server" field
// (rtmp://HOST/live) as tcUrl and its "Stream Key" field as the name; ffmpeg
// splits rtmp://HOST/live/KEY the same way. Extra slashes around the key
// (a "Server" ending in '/', a key starting with '/') are ignored, and so is
// a query after the key (url.Parse has already moved it to RawQuery).
func streamKeyFromURL(u *url.URL) (string, error) {
	app, key, _ := strings.Cut(strings.TrimLeft(u.Path, "/"), "/")
	if app != rtmpApp {
		return "", errBadApp
	}
	key = strings.Trim(key, "/")
	if key == "" {
		return "", errNoKey
	}
	return key, nil
}
