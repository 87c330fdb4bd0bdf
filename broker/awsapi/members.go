package awsapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"sync"
)

// AWS services read request members by their exact names; encoding/json
// matches struct fields regardless of case, so {"Status": ...} would set
// status and could even override {"status": ...}. exactMembers removes,
// before decoding into a value of type t, every object member that is not
// exactly the JSON name of a field (members AWS does not know are ignored
// anyway).
func exactMembers(body []byte, t reflect.Type) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber() // keep numbers exactly as sent
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		// Something follows the value: leave the body as it is so that
		// json.Unmarshal reports it instead of a re-encoding hiding it.
		return nil, errors.New("data after the top-level value")
	}
	if !filterMembers(v, t) {
		return body, nil
	}
	return json.Marshal(v)
}

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

// filterMembers drops the members of v that t does not name exactly and
// reports whether it dropped any.
func filterMembers(v any, t reflect.Type) bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Implements(unmarshalerType) || reflect.PointerTo(t).Implements(unmarshalerType) {
		return false // decodes itself
	}
	changed := false
	switch t.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			return false
		}
		fields := jsonFields(t)
		for k, val := range m {
			ft, ok := fields[k]
			if !ok {
				delete(m, k)
				changed = true
				continue
			}
			if filterMembers(val, ft) {
				changed = true
			}
		}
	case reflect.Slice, reflect.Array:
		if a, ok := v.([]any); ok {
			for _, e := range a {
				if filterMembers(e, t.Elem()) {
					changed = true
				}
			}
		}
	case reflect.Map:
		if m, ok := v.(map[string]any); ok {
			for _, e := range m {
				if filterMembers(e, t.Elem()) {
					changed = true
				}
			}
		}
	}
	return changed
}

var fieldCache sync.Map // reflect.Type -> map[string]reflect.Type

// jsonFields returns the JSON member names of struct type t (embedded
// structs' included) with their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	if f, ok := fieldCache.Load(t); ok {
		return f.(map[string]reflect.Type)
	}
	fields := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			et := f.Type
			if et.Kind() == reflect.Pointer {
				et = et.Elem()
			}
			if et.Kind() == reflect.Struct {
				for k, v := range jsonFields(et) {
					if _, taken := fields[k]; !taken {
						fields[k] = v
					}
				}
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		fields[name] = f.Type
	}
	fieldCache.Store(t, fields)
	return fields
}
