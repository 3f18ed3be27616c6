package outbox

import (
	"time"

	"github.com/openzipkin/zipkin-go/model"
	"github.com/openzipkin/zipkin-go/propagation/b3"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/kitshop/kitshop/pkg/backoff"
)

// HeaderAggregateID is the message header carrying the event's aggregate ID, so a
// consumer can keep an aggregate's events in order without parsing the body.
const HeaderAggregateID = "aggregate_id"

// Backoff paces reconnecting (amqp091 does not reconnect by itself) and retrying after
// failures; its pauses are jittered.
type Backoff = backoff.Exponential

// DefaultBackoff retries after 100 ms, doubling up to 10 s.
var DefaultBackoff = Backoff{Min: 100 * time.Millisecond, Max: 10 * time.Second}

// DeclareExchange declares the durable topic exchange events are published to; the
// relay and every consumer declare it the same way, whoever starts first.
func DeclareExchange(ch *amqp.Channel, name string) error {
	return ch.ExchangeDeclare(name, amqp.ExchangeTopic, true, false, false, false, nil)
}

// TraceHeaders returns the B3 headers that carry sc in a message.
func TraceHeaders(sc model.SpanContext) amqp.Table {
	m := b3.Map{}
	if m.Inject()(sc) != nil {
		return amqp.Table{}
	}
	t := make(amqp.Table, len(m))
	for k, v := range m {
		t[k] = v
	}
	return t
}

// SpanContextFrom reads the B3 headers of a message; ok is false when it has none.
func SpanContextFrom(headers amqp.Table) (sc model.SpanContext, ok bool) {
	m := b3.Map{}
	for _, k := range []string{b3.TraceID, b3.SpanID, b3.ParentSpanID, b3.Sampled, b3.Flags, b3.Context} {
		if v, isString := headers[k].(string); isString {
			m[k] = v
		}
	}
	if len(m) == 0 {
		return model.SpanContext{}, false
	}
	ctx, err := m.Extract()
	if err != nil || ctx == nil {
		return model.SpanContext{}, false
	}
	return *ctx, true
}
