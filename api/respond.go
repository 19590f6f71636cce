package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/store"
)

// envelope is the shape of every answer. Data is omitted on errors and Error
// on success, so a client can branch on success alone.
type envelope struct {
	Success bool       `json:"success"`
	Data    any        `json:"data,omitempty"`
	Error   *errorBody `json:"error,omitempty"`
}

// pageEnvelope is the envelope of a list: data stays an array (the documented
// shape) and next_cursor sits beside it, null on the last page.
type pageEnvelope struct {
	Success    bool    `json:"success"`
	Data       any     `json:"data"`
	NextCursor *string `json:"next_cursor"`
}

// errorBody is the error half of the envelope.
type errorBody struct {
	Code    string      `json:"code"`
	Message string      `json:"message"`
	Field   string      `json:"field,omitempty"`
	Items   []itemError `json:"items,omitempty"` // a refused batch: every refused item
}

// internalMessage is all a caller learns about an unexpected failure; the
// real error goes to the log.
const internalMessage = "internal error"

// statusOf maps an error code of the public contract to its HTTP status.
func statusOf(code string) int {
	switch code {
	case nanohook.CodeValidation:
		return http.StatusUnprocessableEntity
	case nanohook.CodeInvalidJSON, nanohook.CodeUnknownField, nanohook.CodeInvalidRequest:
		return http.StatusBadRequest
	case nanohook.CodeUnauthorized:
		return http.StatusUnauthorized
	case nanohook.CodeNotFound:
		return http.StatusNotFound
	case nanohook.CodeConflict:
		return http.StatusConflict
	case nanohook.CodePayloadTooLarge:
		return http.StatusRequestEntityTooLarge
	case nanohook.CodeUnsupportedMedia:
		return http.StatusUnsupportedMediaType
	case nanohook.CodeRateLimited:
		return http.StatusTooManyRequests
	case nanohook.CodeUnavailable:
		return http.StatusServiceUnavailable
	case codeMethodNotAllowed:
		return http.StatusMethodNotAllowed
	}
	return http.StatusInternalServerError
}

// writeError is the one place where errors become answers: a *nanohook.Error
// by its code, store.ErrNotFound as 404, store.ErrUnavailable as 503, and
// anything else as a 500 whose real text is logged and never sent.
func (s *server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var (
		e      *nanohook.Error
		body   errorBody
		status int
	)
	switch {
	case errors.As(err, &e):
		status = statusOf(e.Code)
		body = errorBody{Code: e.Code, Message: e.Message, Field: e.Field}
		if br, ok := errors.AsType[*batchRefusal](err); ok {
			// A refused batch is a 422 whatever its first item's code,
			// except a 413 when that item is too large to deliver: an
			// item's unknown field alone would map to 400, which the
			// contract (openapi.json) does not give this answer and which
			// would read as "the batch itself is malformed".
			status, body.Message, body.Items = http.StatusUnprocessableEntity, br.Error(), br.items
			if e.Code == nanohook.CodePayloadTooLarge {
				status = http.StatusRequestEntityTooLarge
			}
		}
		if status == http.StatusInternalServerError {
			s.logError(r, "api: internal error", err)
			body = errorBody{Code: nanohook.CodeInternal, Message: internalMessage}
		}
	case errors.Is(err, store.ErrNotFound):
		status = http.StatusNotFound
		body = errorBody{Code: nanohook.CodeNotFound, Message: "not found"}
	case errors.Is(err, store.ErrUnavailable):
		status = http.StatusServiceUnavailable
		body = errorBody{Code: nanohook.CodeUnavailable, Message: "storage is unavailable, retry shortly"}
		s.log.LogAttrs(r.Context(), slog.LevelWarn, "api: storage unavailable",
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Any("error", err))
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		// The caller went away; nobody reads this answer and it is no fault
		// of ours, so it is logged quietly.
		status = http.StatusInternalServerError
		body = errorBody{Code: nanohook.CodeInternal, Message: internalMessage}
		s.log.LogAttrs(r.Context(), slog.LevelInfo, "api: request cancelled",
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Any("error", err))
	default:
		status = http.StatusInternalServerError
		body = errorBody{Code: nanohook.CodeInternal, Message: internalMessage}
		s.logError(r, "api: internal error", err)
	}
	h := w.Header()
	switch status {
	case http.StatusUnauthorized:
		h.Set("WWW-Authenticate", "Bearer")
	case http.StatusServiceUnavailable, http.StatusTooManyRequests:
		if h.Get("Retry-After") == "" {
			h.Set("Retry-After", "1")
		}
	}
	s.writeJSON(w, r, status, envelope{Success: false, Error: &body})
}

// logError logs an error the caller does not get to see.
func (s *server) logError(r *http.Request, msg string, err error) {
	s.log.LogAttrs(r.Context(), slog.LevelError, msg,
		slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Any("error", err))
}

// respond writes a success envelope around data.
func (s *server) respond(w http.ResponseWriter, r *http.Request, status int, data any) {
	s.writeJSON(w, r, status, envelope{Success: true, Data: data})
}

// respondPage writes a list envelope with its next_cursor (nil: last page).
func (s *server) respondPage(w http.ResponseWriter, r *http.Request, data any, next *string) {
	s.writeJSON(w, r, http.StatusOK, pageEnvelope{Success: true, Data: data, NextCursor: next})
}

// newAnswerEncoder returns the JSON encoder of answers: HTML escaping off,
// see writeJSON.
func newAnswerEncoder(w io.Writer) *json.Encoder {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc
}

// writeJSON encodes v completely before writing anything, so that an
// encoding failure still becomes a clean 500 envelope instead of half an
// answer. HTML escaping is off: this is an API, and payload-like strings
// ("<", "&") should read as sent.
func (s *server) writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	var buf bytes.Buffer
	enc := newAnswerEncoder(&buf)
	if err := enc.Encode(v); err != nil {
		s.logError(r, "api: encoding response", err)
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"success":false,"error":{"code":"internal_error","message":"internal error"}}`)
	}
	// Encode ends with a newline; the answer is exactly the JSON value.
	body := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	// Answers carry account data and, once, secrets: no cache may keep them.
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
