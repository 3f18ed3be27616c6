package notification

import (
	"context"
	"sort"
	"sync"
)

type memoryStore struct {
	mu      sync.Mutex
	byEvent map[string]Notification
}

// NewMemoryStore returns a Store in memory, for the demo and unit tests.
func NewMemoryStore() Store { return &memoryStore{byEvent: map[string]Notification{}} }

// Insert holds the lock while send runs, so a concurrent duplicate waits for the
// outcome as it does on the row lock in PostgreSQL.
func (s *memoryStore) Insert(ctx context.Context, n Notification, send func(context.Context) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.byEvent[n.EventID]; ok {
		return ErrDuplicateEvent
	}
	if err := send(ctx); err != nil {
		return err
	}
	s.byEvent[n.EventID] = n
	return nil
}

func (s *memoryStore) ListByUser(_ context.Context, userID string, limit int) ([]Notification, error) {
	s.mu.Lock()
	list := []Notification{}
	for _, n := range s.byEvent {
		if n.UserID == userID {
			list = append(list, n)
		}
	}
	s.mu.Unlock()
	sort.Slice(list, func(i, j int) bool {
		if !list[i].SentAt.Equal(list[j].SentAt) {
			return list[i].SentAt.After(list[j].SentAt)
		}
		return list[i].ID > list[j].ID
	})
	if len(list) > limit {
		list = list[:limit]
	}
	return list, nil
}
