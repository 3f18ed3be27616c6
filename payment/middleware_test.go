package payment

import (
	"context"
	"maps"
	"testing"

	"github.com/kitshop/kitshop/pkg/observe"
)

// counts reads a metric family from m as label set → value (counters) or count
// (histograms).
func counts(t *testing.T, m *observe.Metrics, name string) map[string]float64 {
	t.Helper()
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, metric := range f.GetMetric() {
			key := ""
			for _, l := range metric.GetLabel() {
				if l.GetName() != "service" {
					key += l.GetName() + "=" + l.GetValue() + " "
				}
			}
			if c := metric.GetCounter(); c != nil {
				out[key] = c.GetValue()
			} else {
				out[key] = float64(metric.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}

func TestInstrumentCountsMoneyMovesOnce(t *testing.T) {
	ctx := context.Background()
	m := observe.NewMetrics("payment")
	proc := InstrumentProcessor(simulated(t), m.Histogram("payment", "processor_duration_seconds", "h", "outcome"))
	svc := Instrument(m.Counter("payment", "charges_total", "c", "outcome", "code"))(NewService(NewMemoryStore(), proc, now))

	c, _, err := svc.Charge(ctx, validRequest())
	if err != nil {
		t.Fatal(err)
	}
	_, _, _ = svc.Charge(ctx, validRequest()) // a repeat moves nothing
	_, _, _ = svc.Refund(ctx, c.ID)
	_, _, _ = svc.Refund(ctx, c.ID)
	r := validRequest()
	r.OrderID, r.Card.Number = "order-2", TestCardInsufficientFunds
	_, _, _ = svc.Charge(ctx, r)
	r.OrderID, r.Card.Number = "order-3", "4242424242424241"
	_, _, _ = svc.Charge(ctx, r) // refused before the processor

	wantCharges := map[string]float64{
		"code= outcome=succeeded ":                  1,
		"code= outcome=refunded ":                   1,
		"code=insufficient_funds outcome=declined ": 1,
	}
	if got := counts(t, m, "kitshop_payment_charges_total"); !maps.Equal(got, wantCharges) {
		t.Fatalf("charges_total = %v, want %v", got, wantCharges)
	}
	wantProcessor := map[string]float64{"outcome=approved ": 1, "outcome=declined ": 1}
	if got := counts(t, m, "kitshop_payment_processor_duration_seconds"); !maps.Equal(got, wantProcessor) {
		t.Fatalf("processor_duration_seconds counts = %v, want %v", got, wantProcessor)
	}
}
