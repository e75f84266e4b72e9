package telemetry

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/shopcast/shopcast/webhooks"
)

type fakeWebhooks webhooks.Stats

func (f fakeWebhooks) Stats() webhooks.Stats { return webhooks.Stats(f) }

func TestWebhookCollector(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewWebhookCollector(fakeWebhooks{Delivered: 5, Retried: 2, Failed: 1, Dropped: 3, Depth: 4}))
	want := `
# HELP shopcast_webhook_outbox Webhook deliveries waiting in the outbox.
# TYPE shopcast_webhook_outbox gauge
shopcast_webhook_outbox 4
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "shopcast_webhook_outbox"); err != nil {
		t.Error(err)
	}
	for outcome, n := range map[string]float64{"delivered": 5, "retried": 2, "failed": 1, "dropped": 3} {
		mfs, _ := reg.Gather()
		found := false
		for _, mf := range mfs {
			if mf.GetName() != "shopcast_webhook_deliveries_total" {
				continue
			}
			for _, m := range mf.Metric {
				if m.Label[0].GetValue() == outcome {
					found = true
					if m.Counter.GetValue() != n {
						t.Errorf("%s: %v, want %v", outcome, m.Counter.GetValue(), n)
					}
				}
			}
		}
		if !found {
			t.Errorf("no %s outcome", outcome)
		}
	}
}
