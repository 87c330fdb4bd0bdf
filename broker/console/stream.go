package console

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"
)

// fragments renders a page's live parts: element id -> HTML.
type fragments func(ctx context.Context) (map[string]string, error)

// streamWriteTimeout bounds one write to a stream; a browser that stops
// reading is dropped.
const streamWriteTimeout = 10 * time.Second

// keepAlive is how often an idle stream sends a comment, so that proxies
// keep it open and a vanished browser is noticed.
const keepAlive = 20 * time.Second

// stream serves a page's live updates as Server-Sent Events: one "update"
// event holding the parts that changed, JSON-encoded, at most every
// MinInterval, whenever this node commits a change or every refresh.
func (c *Console) stream(w http.ResponseWriter, r *http.Request, refresh time.Duration, render fragments) {
	if n := c.hub.streams.Add(1); n > int64(c.opts.MaxStreams) {
		c.hub.streams.Add(-1)
		w.Header().Set("Retry-After", "10")
		http.Error(w, "too many live console pages are open on this node", http.StatusServiceUnavailable)
		return
	}
	defer c.hub.streams.Add(-1)
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(c.ctx, cancel) // Close ends every stream
	defer stop()

	write := func(b []byte) bool {
		rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
		if _, err := w.Write(b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	// The browser reconnects on its own after this long when the stream
	// ends (a restart, a shutdown).
	if !write([]byte("retry: 2000\n\n")) {
		return
	}
	sent := map[string]string{}
	var buf bytes.Buffer
	tick := time.NewTicker(refresh)
	defer tick.Stop()
	idle := time.NewTimer(keepAlive)
	defer idle.Stop()
	var last time.Time
	for {
		wake := c.hub.waiter()
		frags, err := render(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			c.log.Debug("console stream: render failed", "path", r.URL.Path, "error", err)
			if errors.Is(err, errGone) {
				write([]byte("event: gone\ndata: {}\n\n"))
				return
			}
		}
		changed := map[string]string{}
		for id, html := range frags {
			if sent[id] != html {
				changed[id] = html
				sent[id] = html
			}
		}
		if len(changed) > 0 {
			data, _ := json.Marshal(changed)
			buf.Reset()
			buf.WriteString("event: update\ndata: ")
			buf.Write(data)
			buf.WriteString("\n\n")
			if !write(buf.Bytes()) {
				return
			}
			idle.Reset(keepAlive)
		}
		last = time.Now()
	wait:
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-tick.C:
		case <-idle.C:
			if !write([]byte(": " + strconv.FormatInt(time.Now().Unix(), 10) + "\n\n")) {
				return
			}
			idle.Reset(keepAlive)
			goto wait
		}
		// Coalesce: whatever else changes meanwhile goes out together.
		if d := time.Until(last.Add(c.opts.MinInterval)); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
	}
}

// errGone is returned by a page's render when its subject no longer
// exists (a deleted job): the stream tells the page and ends.
var errGone = errors.New("the page's subject is gone")
