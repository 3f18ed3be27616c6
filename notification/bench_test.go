package notification

import (
	"context"
	"database/sql"
	"sort"
	"testing"
	"time"

	"github.com/kitshop/kitshop/pkg/outbox"
	"github.com/kitshop/kitshop/pkg/postgres"
)

// BenchmarkOutboxToEmail measures the pipeline outbox → relay → RabbitMQ → consumer →
// email recorded, against the real PostgreSQL and RabbitMQ. Run it with a fixed count,
// e.g. -bench OutboxToEmail -benchtime 2000x.
//
// burst: b.N events enqueued as fast as the database takes them (100 per transaction)
// while relay and consumer run; reports events/s end to end and the lag of each event
// from occurred_at (the order's confirmation) to its email's sent_at.
// steady: events enqueued one per transaction at 200/s, with the relay polling every
// 100 ms (its default) or 20 ms; reports the lag.
func BenchmarkOutboxToEmail(b *testing.B) {
	b.Run("burst", func(b *testing.B) {
		r := newRig(b)
		r.startConsumer(r.service())
		r.startRelay(r.direct, 100*time.Millisecond)
		b.ResetTimer()
		start := time.Now()
		occurred := r.enqueueBatches(b.N, 100, 0)
		r.waitFor("every email", func() bool { return r.emails() == b.N })
		elapsed := time.Since(start)
		b.StopTimer()
		b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
		r.reportLag(b, occurred)
	})
	for _, poll := range []time.Duration{100 * time.Millisecond, 20 * time.Millisecond} {
		b.Run("steady-200/s-poll-"+poll.String(), func(b *testing.B) {
			r := newRig(b)
			r.startConsumer(r.service())
			r.startRelay(r.direct, poll)
			b.ResetTimer()
			occurred := r.enqueueBatches(b.N, 1, time.Second/200)
			r.waitFor("every email", func() bool { return r.emails() == b.N })
			b.StopTimer()
			r.reportLag(b, occurred)
		})
	}
}

// enqueueBatches writes n order.confirmed events, per transactions of batch, pausing
// every between transactions, and returns when each occurred.
func (r *rig) enqueueBatches(n, batch int, every time.Duration) map[string]time.Time {
	r.t.Helper()
	ctx := context.Background()
	occurred := make(map[string]time.Time, n)
	next := time.Now()
	for done := 0; done < n; {
		size := min(batch, n-done)
		err := postgres.InTx(ctx, r.outboxDB, nil, func(tx *sql.Tx) error {
			for i := 0; i < size; i++ {
				d := orderData()
				d.OrderID = outbox.NewID()
				e, err := outbox.NewEvent(EventOrderConfirmed, d.OrderID, d, time.Now())
				if err != nil {
					return err
				}
				if err := outbox.Enqueue(ctx, tx, e); err != nil {
					return err
				}
				occurred[e.ID] = e.OccurredAt
			}
			return nil
		})
		if err != nil {
			r.t.Fatal(err)
		}
		done += size
		if every > 0 {
			next = next.Add(every)
			time.Sleep(time.Until(next))
		}
	}
	return occurred
}

// reportLag reports the 50th and 99th percentile of occurred_at → sent_at.
func (r *rig) reportLag(b *testing.B, occurred map[string]time.Time) {
	rows, err := r.notesDB.Query(`SELECT event_id, sent_at FROM notifications`)
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	var lags []time.Duration
	for rows.Next() {
		var id string
		var sent time.Time
		if err := rows.Scan(&id, &sent); err != nil {
			b.Fatal(err)
		}
		lags = append(lags, sent.Sub(occurred[id]))
	}
	if err := rows.Err(); err != nil || len(lags) == 0 {
		b.Fatalf("no lags (%v)", err)
	}
	sort.Slice(lags, func(i, j int) bool { return lags[i] < lags[j] })
	pct := func(p float64) float64 {
		return float64(lags[int(p*float64(len(lags)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "lag-p50-ms")
	b.ReportMetric(pct(0.99), "lag-p99-ms")
}
