package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/nanohook/nanohook"
	"github.com/nanohook/nanohook/webhook"
)

// decodeBody reads the JSON request body (at most limit bytes) and decodes
// it strictly into dst, a pointer to a flat struct with json tags. It returns
// the body's top-level members as raw JSON so that handlers can tell an absent
// field from an explicit null.
func decodeBody(w http.ResponseWriter, r *http.Request, limit int64, dst any) (map[string]json.RawMessage, error) {
	data, err := readJSONBody(w, r, limit)
	if err != nil {
		return nil, err
	}
	return decodeObject(data, dst, "")
}

// readJSONBody enforces what every body must be before it is parsed: declared
// as JSON, at most limit bytes, non-empty and valid UTF-8. encoding/json would
// silently replace invalid UTF-8 with U+FFFD, which would store (and sign)
// something other than what was sent, so it is refused up front.
func readJSONBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if err := checkContentType(r.Header.Get("Content-Type")); err != nil {
		return nil, err
	}
	tooLarge := nanohook.Errorf(nanohook.CodePayloadTooLarge, "", "request body is larger than %d bytes", limit)
	if r.ContentLength > limit {
		return nil, tooLarge
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, tooLarge
		}
		return nil, nanohook.Errorf(nanohook.CodeInvalidRequest, "", "reading request body: %v", err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, nanohook.Errorf(nanohook.CodeInvalidJSON, "", "request body is empty")
	}
	if !utf8.Valid(data) {
		return nil, nanohook.Errorf(nanohook.CodeInvalidJSON, "", "request body is not valid UTF-8")
	}
	return data, nil
}

// checkContentType accepts application/json with any parameters, except a
// charset other than UTF-8 (JSON on the wire is UTF-8, RFC 8259 §8.1).
func checkContentType(ct string) error {
	if ct == "" {
		return nanohook.Errorf(nanohook.CodeUnsupportedMedia, "", "Content-Type must be application/json")
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return nanohook.Errorf(nanohook.CodeUnsupportedMedia, "", "Content-Type must be application/json")
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "utf8") {
		return nanohook.Errorf(nanohook.CodeUnsupportedMedia, "", "Content-Type charset must be utf-8")
	}
	return nil
}

// decodeObject decodes one JSON object strictly into dst: unknown fields are
// refused (by exact, case-sensitive name, which encoding/json alone does not
// do), type mismatches name their field, and nothing may follow the value.
// prefix is prepended to field names ("events[3]") when the object is an item
// of a larger body; with no prefix a non-object is a malformed request.
func decodeObject(data []byte, dst any, prefix string) (map[string]json.RawMessage, error) {
	// encoding/json decodes null into a struct as "nothing to do", which
	// would let a body of null pass as {} (a rotation with every default,
	// for one). A body, or a batch item, is an object or nothing.
	if isNull(data) {
		if prefix == "" {
			return nil, nanohook.Errorf(nanohook.CodeInvalidRequest, "", "request body must be a JSON object")
		}
		return nil, nanohook.Invalid(prefix, "must be an object")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return nil, decodeError(err, dst, prefix)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nanohook.Errorf(nanohook.CodeInvalidJSON, prefix,
			"%sunexpected data after the JSON value at byte offset %d", label(prefix), dec.InputOffset())
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(data, &members); err != nil {
		// Unreachable after a successful strict decode into a struct, but
		// an error is safer than an assumption.
		return nil, decodeError(err, dst, prefix)
	}
	names := jsonNames(reflect.TypeOf(dst).Elem())
	for name := range members {
		if !slices.Contains(names, name) {
			return nil, unknownField(joinField(prefix, name))
		}
	}
	// One rule for every body: null is not a value. An optional field is
	// left out, never nulled, so "absent" has a single spelling and a PATCH
	// cannot be misread as "clear this field".
	for _, name := range names {
		if raw, ok := members[name]; ok && isNull(raw) {
			return nil, nanohook.Invalid(joinField(prefix, name), "must not be null (leave the field out instead)")
		}
	}
	// encoding/json turns an unpaired surrogate escape ("\ud800") into
	// U+FFFD without a word, so a field holding one would be stored as
	// something other than what was sent; like invalid UTF-8 (see
	// readJSONBody) it is refused instead. Raw members (event data) are
	// left alone: their own parser keeps such escapes exactly, as
	// JavaScript does.
	for _, name := range names {
		raw, ok := members[name]
		if !ok || isRaw(fieldType(reflect.TypeOf(dst).Elem(), name)) {
			continue
		}
		if webhook.HasLoneSurrogate(raw) {
			return nil, nanohook.Invalid(joinField(prefix, name),
				"contains an unpaired UTF-16 surrogate escape (\\ud800 to \\udfff), which has no UTF-8 form and cannot be stored as sent")
		}
	}
	return members, nil
}

// isRaw reports whether a field keeps its JSON undecoded: json.RawMessage
// or a slice of them (batch items, decoded one by one later).
func isRaw(t reflect.Type) bool {
	return t == rawMessageType || (t != nil && t.Kind() == reflect.Slice && t.Elem() == rawMessageType)
}

// decodeError translates an encoding/json error into the public contract.
func decodeError(err error, dst any, prefix string) error {
	if se, ok := errors.AsType[*json.SyntaxError](err); ok {
		return nanohook.Errorf(nanohook.CodeInvalidJSON, prefix,
			"%sinvalid JSON at byte offset %d: %s", label(prefix), se.Offset, se.Error())
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return nanohook.Errorf(nanohook.CodeInvalidJSON, prefix, "%sunexpected end of JSON input", label(prefix))
	}
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		if te.Field == "" {
			if prefix == "" {
				return nanohook.Errorf(nanohook.CodeInvalidRequest, "", "request body must be a JSON object")
			}
			return nanohook.Invalid(prefix, "must be an object")
		}
		t := fieldType(reflect.TypeOf(dst).Elem(), te.Field)
		if t == nil {
			t = te.Type
		}
		return nanohook.Invalid(joinField(prefix, te.Field), "must be %s", describe(t))
	}
	// encoding/json has no typed error for unknown fields.
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		if unq, uerr := strconv.Unquote(name); uerr == nil {
			name = unq
		}
		return unknownField(joinField(prefix, name))
	}
	return nanohook.Errorf(nanohook.CodeInvalidJSON, prefix, "%sinvalid JSON: %v", label(prefix), err)
}

func unknownField(field string) error {
	return nanohook.Errorf(nanohook.CodeUnknownField, field, "%s: unknown field", field)
}

// label is the "field: " start of a message about the object at prefix.
func label(prefix string) string {
	if prefix == "" {
		return ""
	}
	return prefix + ": "
}

// joinField builds the dotted path of a field inside the object at prefix.
func joinField(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// isNull reports whether a raw member is JSON null.
func isNull(raw json.RawMessage) bool {
	return string(bytes.TrimSpace(raw)) == "null"
}

// jsonNames lists the JSON member names of a flat struct type in field
// order, which is also the order fields are reported in.
func jsonNames(t reflect.Type) []string {
	names := make([]string, 0, t.NumField())
	for f := range t.Fields() {
		if name := jsonName(f); name != "" {
			names = append(names, name)
		}
	}
	return names
}

func jsonName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	tag := f.Tag.Get("json")
	if tag == "-" {
		return ""
	}
	name, _, _ := strings.Cut(tag, ",")
	if name == "" {
		name = f.Name
	}
	return name
}

// fieldType finds the declared type of the member called name, so that the
// message describes what the field wants ("an array of strings") rather than
// the element that failed ("a string").
func fieldType(t reflect.Type, name string) reflect.Type {
	for f := range t.Fields() {
		if jsonName(f) == name {
			return f.Type
		}
	}
	return nil
}

var rawMessageType = reflect.TypeFor[json.RawMessage]()

// describe names a Go type in the words of a JSON client.
func describe(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == rawMessageType {
		return "a JSON value"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Slice, reflect.Array:
		switch elem := describe(t.Elem()); elem {
		case "a string", "an integer", "a boolean", "a number", "an object":
			_, plural, _ := strings.Cut(elem, " ")
			return "an array of " + plural + "s"
		}
		return "an array"
	}
	return "a different type"
}
