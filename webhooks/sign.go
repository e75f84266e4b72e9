package webhooks

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
)

// Sign returns the webhook-signature header of a message: "v1," and the
// base64 of HMAC-SHA256(key, id "." timestamp "." body), where timestamp is
// the webhook-timestamp header (Unix seconds). Standard Webhooks,
// "Signature scheme": symmetric signatures are versioned "v1".
func Sign(key []byte, id string, timestamp int64, body []byte) string {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(id))
	h.Write([]byte{'.'})
	h.Write(strconv.AppendInt(nil, timestamp, 10))
	h.Write([]byte{'.'})
	h.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(h.Sum(nil))
}
