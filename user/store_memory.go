package user

import (
	"context"
	"sync"
)

// memoryStore keeps accounts in memory, for the demo without PostgreSQL and for tests.
type memoryStore struct {
	mu      sync.RWMutex
	byID    map[string]Account
	byEmail map[string]string // email → id
}

// NewMemoryStore returns an empty in-memory Store.
func NewMemoryStore() Store {
	return &memoryStore{byID: map[string]Account{}, byEmail: map[string]string{}}
}

func (s *memoryStore) Create(_ context.Context, a Account) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.byEmail[a.Email]; ok {
		return ErrEmailTaken
	}
	s.byID[a.ID] = a
	s.byEmail[a.Email] = a.ID
	return nil
}

func (s *memoryStore) ByEmail(_ context.Context, email string) (Account, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	id, ok := s.byEmail[email]
	if !ok {
		return Account{}, ErrUserNotFound
	}
	return s.byID[id], nil
}

func (s *memoryStore) ByID(_ context.Context, id string) (Account, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	a, ok := s.byID[id]
	if !ok {
		return Account{}, ErrUserNotFound
	}
	return a, nil
}

func (s *memoryStore) SetPasswordHash(_ context.Context, id, hash string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.byID[id]
	if !ok {
		return ErrUserNotFound
	}
	a.PasswordHash = hash
	s.byID[id] = a
	return nil
}
