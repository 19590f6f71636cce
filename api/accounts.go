package api

import (
	"context"
	"net/http"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/store"
)

// AccountStore is what the admin account routes need: accounts and their
// API keys.
type AccountStore interface {
	CreateAccount(ctx context.Context, p store.CreateAccountParams) (nanohook.Account, nanohook.APIKey, error)
	CreateAPIKey(ctx context.Context, p store.CreateAPIKeyParams) (nanohook.APIKey, error)
	DeleteAPIKey(ctx context.Context, accountID, keyID int64) error
}

// createAccountRequest is the body of POST /admin/v1/accounts.
type createAccountRequest struct {
	Name string `json:"name"`
}

// accountJSON is the create-account answer; api_key is shown only here.
type accountJSON struct {
	ID     int64  `json:"id"`
	Name   string `json:"name"`
	APIKey string `json:"api_key"`
}

// apiKeyJSON is the create-key answer; api_key is shown only here.
type apiKeyJSON struct {
	ID        int64  `json:"id"`
	AccountID int64  `json:"account_id"`
	APIKey    string `json:"api_key"`
}

// createAccount makes an account and its first API key.
func (s *server) createAccount(w http.ResponseWriter, r *http.Request) error {
	var req createAccountRequest
	if _, err := decodeBody(w, r, s.maxBody, &req); err != nil {
		return err
	}
	if err := nanohook.ValidateAccountName("name", req.Name); err != nil {
		return err
	}
	key, hash := nanohook.NewAPIKey()
	a, _, err := s.store.CreateAccount(r.Context(), store.CreateAccountParams{
		Name: req.Name, KeyHash: hash, Now: s.now(),
	})
	if err != nil {
		return err
	}
	s.respond(w, r, http.StatusCreated, accountJSON{ID: a.ID, Name: a.Name, APIKey: key})
	return nil
}

// createAPIKey adds a key to an account, for rotation: the old key keeps
// working until it is deleted. The request needs no body.
func (s *server) createAPIKey(w http.ResponseWriter, r *http.Request) error {
	accountID, err := pathID(r, "id")
	if err != nil {
		return err
	}
	key, hash := nanohook.NewAPIKey()
	k, err := s.store.CreateAPIKey(r.Context(), store.CreateAPIKeyParams{
		AccountID: accountID, KeyHash: hash, Now: s.now(),
	})
	if err != nil {
		return err
	}
	s.respond(w, r, http.StatusCreated, apiKeyJSON{ID: k.ID, AccountID: k.AccountID, APIKey: key})
	return nil
}

// deleteAPIKey revokes a key of an account.
func (s *server) deleteAPIKey(w http.ResponseWriter, r *http.Request) error {
	accountID, err := pathID(r, "id")
	if err != nil {
		return err
	}
	keyID, err := pathID(r, "key_id")
	if err != nil {
		return err
	}
	if err := s.store.DeleteAPIKey(r.Context(), accountID, keyID); err != nil {
		return err
	}
	s.respond(w, r, http.StatusOK, idJSON{ID: keyID})
	return nil
}
