package awsapi

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
)

// Call runs one request through an API handler in process, as if it had
// come over HTTP unsigned, and returns the response body of a 2xx answer,
// or the error the API answered with. The broker's preload and its
// /admin/wait use it so that they decode, validate and answer exactly as
// the API does.
func Call(ctx context.Context, h http.Handler, method, path string, body []byte) ([]byte, *Error) {
	r, err := http.NewRequestWithContext(ctx, method, path, bytes.NewReader(body))
	if err != nil {
		return nil, Errorf(http.StatusBadRequest, "InvalidRequestException", "bad request path "+path)
	}
	if body != nil {
		r.Header.Set("Content-Type", "application/json")
	}
	w := &bufferWriter{header: http.Header{}, status: http.StatusOK}
	h.ServeHTTP(w, r)
	if w.status/100 == 2 {
		return w.body.Bytes(), nil
	}
	e := &Error{Status: w.status, Type: w.header.Get("x-amzn-ErrorType")}
	var msg struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(w.body.Bytes(), &msg) == nil {
		e.Message = msg.Message
	}
	if e.Type == "" {
		e.Type = http.StatusText(w.status)
	}
	return nil, e
}

// bufferWriter is the http.ResponseWriter of Call.
type bufferWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
	wrote  bool
}

func (w *bufferWriter) Header() http.Header { return w.header }

func (w *bufferWriter) WriteHeader(status int) {
	if !w.wrote {
		w.status, w.wrote = status, true
	}
}

func (w *bufferWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.body.Write(b)
}
