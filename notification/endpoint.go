package notification

import (
	"context"
	"time"

	"github.com/go-kit/kit/endpoint"

	"github.com/kitshop/kitshop/pkg/auth"
	"github.com/kitshop/kitshop/pkg/observe"
	"github.com/kitshop/kitshop/pkg/outbox"
)

// Endpoints are the service's operations as go-kit endpoints. HandleEvent is reached
// through the AMQP consumer, ListNotifications through HTTP. Its methods make it a
// Service, so the consumer calls the observed endpoint through the Service interface.
type Endpoints struct {
	HandleEventEndpoint       endpoint.Endpoint
	ListNotificationsEndpoint endpoint.Endpoint
}

// MakeServerEndpoints wraps s's methods in endpoints with tracing, logging and metrics;
// ListNotifications needs a token v accepts.
func MakeServerEndpoints(s Service, obs observe.Observer, v auth.Verifier) Endpoints {
	return Endpoints{
		HandleEventEndpoint:       obs.Endpoint("handle_event", makeHandleEventEndpoint(s)),
		ListNotificationsEndpoint: obs.Endpoint("list_notifications", auth.Authenticated(v)(makeListNotificationsEndpoint(s))),
	}
}

type handleEventRequest struct{ Event outbox.Event }

type handleEventResponse struct{ Outcome Outcome }

func makeHandleEventEndpoint(s Service) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		outcome, err := s.HandleEvent(ctx, request.(handleEventRequest).Event)
		if err != nil {
			return nil, err
		}
		return handleEventResponse{Outcome: outcome}, nil
	}
}

type listNotificationsRequest struct{}

// notificationView is a notification as GET /v1/notifications shows it.
type notificationView struct {
	ID      string    `json:"id"`
	OrderID string    `json:"order_id"`
	Type    string    `json:"type"`
	To      string    `json:"to"`
	Subject string    `json:"subject"`
	SentAt  time.Time `json:"sent_at"`
}

type listNotificationsResponse struct {
	Notifications []notificationView `json:"notifications"`
}

func makeListNotificationsEndpoint(s Service) endpoint.Endpoint {
	return func(ctx context.Context, _ any) (any, error) {
		list, err := s.ListNotifications(ctx)
		if err != nil {
			return nil, err
		}
		resp := listNotificationsResponse{Notifications: make([]notificationView, len(list))}
		for i, n := range list {
			resp.Notifications[i] = notificationView{
				ID: n.ID, OrderID: n.OrderID, Type: n.Type, To: n.To, Subject: n.Subject, SentAt: n.SentAt.UTC(),
			}
		}
		return resp, nil
	}
}

// HandleEvent calls the HandleEvent endpoint, making Endpoints a Service.
func (e Endpoints) HandleEvent(ctx context.Context, ev outbox.Event) (Outcome, error) {
	resp, err := e.HandleEventEndpoint(ctx, handleEventRequest{Event: ev})
	if err != nil {
		return 0, err
	}
	return resp.(handleEventResponse).Outcome, nil
}

// ListNotifications calls the ListNotifications endpoint, making Endpoints a Service.
// The wire form carries no body, event ID or user ID, so those stay empty.
func (e Endpoints) ListNotifications(ctx context.Context) ([]Notification, error) {
	resp, err := e.ListNotificationsEndpoint(ctx, listNotificationsRequest{})
	if err != nil {
		return nil, err
	}
	wire := resp.(listNotificationsResponse).Notifications
	list := make([]Notification, len(wire))
	for i, n := range wire {
		list[i] = Notification{ID: n.ID, OrderID: n.OrderID, Type: n.Type, To: n.To, Subject: n.Subject, SentAt: n.SentAt}
	}
	return list, nil
}
