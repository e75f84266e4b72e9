package cues

import "github.com/shopcast/shopcast/packager"

// DateRangeClass is the CLASS of every shopcast EXT-X-DATERANGE.
const DateRangeClass = "com.shopcast.product"

// dateRange returns the DATERANGE attributes of a cue whose Wire JSON is
// wire; the packager adds ID, START-DATE and END-DATE/DURATION:
//
//	#EXT-X-DATERANGE:ID="<id>",CLASS="com.shopcast.product",
//	START-DATE="<start>"[,END-DATE="<end>"][,DURATION=<s>],
//	X-COM-SHOPCAST-SKU="...",X-COM-SHOPCAST-TITLE="...",
//	X-COM-SHOPCAST-PRICE="...",X-COM-SHOPCAST-CURRENCY="...",
//	X-COM-SHOPCAST-IMAGE="...",X-COM-SHOPCAST-URL="...",
//	X-COM-SHOPCAST-CUE=0x<hex of the Wire JSON>
//
// The price is a quoted-string, not a number: "89.90" keeps its decimals.
func dateRange(c *Cue, wire []byte) *packager.DateRange {
	dr := &packager.DateRange{Class: DateRangeClass}
	if p := c.Product; p != nil {
		dr.Attrs = append(dr.Attrs,
			packager.QuotedAttr("X-COM-SHOPCAST-SKU", p.SKU),
			packager.QuotedAttr("X-COM-SHOPCAST-TITLE", p.Title),
			packager.QuotedAttr("X-COM-SHOPCAST-PRICE", p.Price.Amount),
			packager.QuotedAttr("X-COM-SHOPCAST-CURRENCY", p.Price.Currency),
			packager.QuotedAttr("X-COM-SHOPCAST-IMAGE", p.ImageURL),
			packager.QuotedAttr("X-COM-SHOPCAST-URL", p.URL),
		)
	}
	dr.Attrs = append(dr.Attrs, packager.HexAttr("X-COM-SHOPCAST-CUE", wire))
	return dr
}
