package origin

import (
	"testing"

	"github.com/shopcast/shopcast/packager"
)

func TestParseDirectives(t *testing.T) {
	tests := []struct {
		query   string
		msn     int64
		part    int64
		skip    packager.Skip
		wantErr bool
	}{
		{query: "", msn: -1, part: -1},
		{query: "_HLS_msn=0", msn: 0, part: -1},
		{query: "_HLS_msn=12", msn: 12, part: -1},
		{query: "_HLS_msn=12&_HLS_part=0", msn: 12, part: 0},
		{query: "_HLS_part=3&_HLS_msn=12", msn: 12, part: 3},
		{query: "_HLS_msn=007", msn: 7, part: -1},
		{query: "_HLS_msn=9223372036854775807", msn: 9223372036854775807, part: -1},
		{query: "_HLS_skip=YES", msn: -1, part: -1, skip: packager.SkipYes},
		{query: "_HLS_skip=v2", msn: -1, part: -1, skip: packager.SkipV2},
		{query: "_HLS_msn=5&_HLS_part=1&_HLS_skip=YES", msn: 5, part: 1, skip: packager.SkipYes},
		// Cache busters and other parameters are ignored.
		{query: "cb=123&_HLS_msn=5", msn: 5, part: -1},
		{query: "t=%zz&x;y=1&_HLS_msn=5", msn: 5, part: -1},
		{query: "_HLS_report=../x&_HLS_other=1", msn: -1, part: -1},
		{query: "&&_HLS_msn=5&", msn: 5, part: -1},
		// A percent-encoded directive is the same directive.
		{query: "%5FHLS_msn=%35", msn: 5, part: -1},

		// RFC 8216bis 6.2.5.2: _HLS_part without _HLS_msn is a 400.
		{query: "_HLS_part=1", wantErr: true},
		{query: "_HLS_part=1&_HLS_skip=YES", wantErr: true},
		// Not a non-negative decimal integer.
		{query: "_HLS_msn=", wantErr: true},
		{query: "_HLS_msn", wantErr: true},
		{query: "_HLS_msn=-1", wantErr: true},
		{query: "_HLS_msn=+1", wantErr: true},
		{query: "_HLS_msn=1.5", wantErr: true},
		{query: "_HLS_msn=0x10", wantErr: true},
		{query: "_HLS_msn=%201", wantErr: true},
		{query: "_HLS_msn=1e3", wantErr: true},
		{query: "_HLS_msn=abc", wantErr: true},
		{query: "_HLS_msn=9223372036854775808", wantErr: true},
		{query: "_HLS_msn=%zz", wantErr: true},
		{query: "_HLS_msn=5&_HLS_part=", wantErr: true},
		{query: "_HLS_msn=5&_HLS_part=-1", wantErr: true},
		{query: "_HLS_msn=5&_HLS_part=x", wantErr: true},
		// Repeated directives are ambiguous.
		{query: "_HLS_msn=5&_HLS_msn=6", wantErr: true},
		{query: "_HLS_msn=5&_HLS_part=1&_HLS_part=2", wantErr: true},
		{query: "_HLS_skip=YES&_HLS_skip=YES", wantErr: true},
		// _HLS_skip is YES or v2, case-sensitive.
		{query: "_HLS_skip=yes", wantErr: true},
		{query: "_HLS_skip=NO", wantErr: true},
		{query: "_HLS_skip=V2", wantErr: true},
		{query: "_HLS_skip=", wantErr: true},
		{query: "_HLS_skip", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			var req packager.Request
			err := parseDirectives(tt.query, &req)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("got %+v, want an error", req)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if req.MSN != tt.msn || req.Part != tt.part || req.Skip != tt.skip {
				t.Errorf("got msn %d part %d skip %d, want %d %d %d",
					req.MSN, req.Part, req.Skip, tt.msn, tt.part, tt.skip)
			}
		})
	}
}
