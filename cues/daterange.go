package cues

import "github.com/shopcast/shopcast/packager"

// The CLASS of each type's EXT-X-DATERANGE. RFC 8216bis 4.4.5.1: "all
// EXT-X-DATERANGE tags with the same CLASS attribute value MUST adhere to
// these semantics", so each type, whose X- attributes differ, has its own.
// A product update keeps the product class.
const (
	// DateRangeClass is the CLASS of a product cue's DATERANGE.
	DateRangeClass = "com.shopcast.product"
	// DateRangeClassPoll is the CLASS of a poll's DATERANGE.
	DateRangeClassPoll = "com.shopcast.poll"
	// DateRangeClassPollResult is the CLASS of a poll result's DATERANGE.
	DateRangeClassPollResult = "com.shopcast.poll-result"
	// DateRangeClassDeal is the CLASS of a flash deal's DATERANGE.
	DateRangeClassDeal = "com.shopcast.deal"
)

// dateRange returns the DATERANGE attributes of a cue whose Wire JSON is
// wire; the packager adds ID, START-DATE and END-DATE/DURATION. A product:
//
//	#EXT-X-DATERANGE:ID="<id>",CLASS="com.shopcast.product",
//	START-DATE="<start>"[,END-DATE="<end>"][,DURATION=<s>],
//	X-COM-SHOPCAST-SKU="...",X-COM-SHOPCAST-TITLE="...",
//	X-COM-SHOPCAST-PRICE="...",X-COM-SHOPCAST-CURRENCY="...",
//	X-COM-SHOPCAST-IMAGE="...",X-COM-SHOPCAST-URL="...",
//	[X-COM-SHOPCAST-REPLACES="<old id>",]
//	X-COM-SHOPCAST-CUE=0x<hex of the Wire JSON>
//
// A deal has the product's attributes with the deal price and
// X-COM-SHOPCAST-UNITS; a poll X-COM-SHOPCAST-QUESTION; a poll result
// X-COM-SHOPCAST-POLL. X-COM-SHOPCAST-CUE is always there and last: it is
// the whole cue, the rest is for readers of the playlist alone.
//
// The price is a quoted-string, not a number: "89.90" keeps its decimals.
func dateRange(c *Cue, wire []byte) *packager.DateRange {
	dr := &packager.DateRange{Class: DateRangeClass}
	product := func(p *Product, price Price) {
		dr.Attrs = append(dr.Attrs,
			packager.QuotedAttr("X-COM-SHOPCAST-SKU", p.SKU),
			packager.QuotedAttr("X-COM-SHOPCAST-TITLE", p.Title),
			packager.QuotedAttr("X-COM-SHOPCAST-PRICE", price.Amount),
			packager.QuotedAttr("X-COM-SHOPCAST-CURRENCY", price.Currency),
			packager.QuotedAttr("X-COM-SHOPCAST-IMAGE", p.ImageURL),
			packager.QuotedAttr("X-COM-SHOPCAST-URL", p.URL),
		)
	}
	switch {
	case c.Deal != nil:
		dr.Class = DateRangeClassDeal
		product(&c.Deal.Product, c.Deal.Price)
		if c.Deal.Units > 0 {
			dr.Attrs = append(dr.Attrs, packager.NumberAttr("X-COM-SHOPCAST-UNITS", float64(c.Deal.Units)))
		}
	case c.Poll != nil:
		dr.Class = DateRangeClassPoll
		dr.Attrs = append(dr.Attrs, packager.QuotedAttr("X-COM-SHOPCAST-QUESTION", c.Poll.Question))
	case c.PollResult != nil:
		dr.Class = DateRangeClassPollResult
		dr.Attrs = append(dr.Attrs, packager.QuotedAttr("X-COM-SHOPCAST-POLL", c.PollResult.Poll))
	case c.Product != nil:
		product(c.Product, c.Product.Price)
	}
	if c.Replaces != "" {
		dr.Attrs = append(dr.Attrs, packager.QuotedAttr("X-COM-SHOPCAST-REPLACES", c.Replaces))
	}
	dr.Attrs = append(dr.Attrs, packager.HexAttr("X-COM-SHOPCAST-CUE", wire))
	return dr
}
