package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// The -consoles setting holds live pages of the broker's web console open
// during a scenario, as browsers would: each is the page's Server-Sent
// Events stream (the request a page's script makes), read to the end and
// counted. The report says how many messages each page was sent, and the
// most any page was sent within one second.

// ConsoleResult is what the open console pages received.
type ConsoleResult struct {
	Pages []ConsolePage `json:"pages"`
	// MaxPerSecond is the most messages one page received within any one
	// second.
	MaxPerSecond int `json:"max_messages_per_second"`
	// Messages is the total over every page.
	Messages int `json:"messages"`
}

// ConsolePage is one open page.
type ConsolePage struct {
	Path         string  `json:"path"`
	OpenS        float64 `json:"open_s"`
	Messages     int     `json:"messages"`
	Bytes        int64   `json:"bytes"`
	PerSecond    float64 `json:"messages_per_second"`
	MaxPerSecond int     `json:"max_messages_per_second"`
	Error        string  `json:"error,omitempty"`
}

// consoleStream is one open page's stream.
type consoleStream struct {
	path   string
	opened time.Time
	mu     sync.Mutex
	times  []time.Time // arrival of each update message
	bytes  int64
	err    error
	done   chan struct{}
}

// consoles holds pages open until close.
type consoles struct {
	cancel  context.CancelFunc
	streams []*consoleStream
}

// openConsoles opens the live stream of each path on the API at base; it
// fails unless every stream answers 200 with an event stream.
func openConsoles(ctx context.Context, base string, paths []string) (*consoles, error) {
	ctx, cancel := context.WithCancel(ctx)
	c := &consoles{cancel: cancel}
	client := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	for _, p := range paths {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+p, nil)
		if err != nil {
			c.close()
			return nil, err
		}
		req.Header.Set("Accept", "text/event-stream")
		resp, err := client.Do(req)
		if err != nil {
			c.close()
			return nil, fmt.Errorf("open console page %s: %w", p, err)
		}
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			resp.Body.Close()
			c.close()
			return nil, fmt.Errorf("open console page %s: HTTP %d: %s", p, resp.StatusCode, body)
		}
		s := &consoleStream{path: p, opened: time.Now(), done: make(chan struct{})}
		c.streams = append(c.streams, s)
		go s.read(resp.Body)
	}
	return c, nil
}

func (s *consoleStream) read(body io.ReadCloser) {
	defer close(s.done)
	defer body.Close()
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		s.mu.Lock()
		s.bytes += int64(len(line)) + 1
		if string(line) == "event: update" {
			s.times = append(s.times, time.Now())
		}
		s.mu.Unlock()
	}
	if err := sc.Err(); err != nil && !errors.Is(err, context.Canceled) {
		s.mu.Lock()
		s.err = err
		s.mu.Unlock()
	}
}

// close ends the streams and returns what they received.
func (c *consoles) close() *ConsoleResult {
	now := time.Now()
	c.cancel()
	res := &ConsoleResult{}
	for _, s := range c.streams {
		<-s.done
		s.mu.Lock()
		p := ConsolePage{Path: s.path, OpenS: round3(now.Sub(s.opened).Seconds()), Messages: len(s.times), Bytes: s.bytes,
			MaxPerSecond: maxInWindow(s.times, time.Second)}
		if p.OpenS > 0 {
			p.PerSecond = round3(float64(p.Messages) / p.OpenS)
		}
		if s.err != nil && !strings.Contains(s.err.Error(), "context canceled") {
			p.Error = s.err.Error()
		}
		s.mu.Unlock()
		res.Pages = append(res.Pages, p)
		res.Messages += p.Messages
		res.MaxPerSecond = max(res.MaxPerSecond, p.MaxPerSecond)
	}
	return res
}

// maxInWindow returns the most of the sorted times that fall within any
// window of length w.
func maxInWindow(times []time.Time, w time.Duration) int {
	best, j := 0, 0
	for i := range times {
		for times[i].Sub(times[j]) >= w {
			j++
		}
		best = max(best, i-j+1)
	}
	return best
}

// consolePages picks n pages for a scenario, in turn from the list: the
// busiest pages first.
func consolePages(n int, pages ...string) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = pages[i%len(pages)]
	}
	return out
}

// writeConsoles prints the console pages' table.
func writeConsoles(w io.Writer, c *ConsoleResult) {
	fmt.Fprintf(w, "\nconsole pages open: %d; messages %d; at most %d to one page within one second\n", len(c.Pages), c.Messages, c.MaxPerSecond)
	for _, p := range c.Pages {
		fmt.Fprintf(w, "  %-60s %5d messages in %6.1fs (%.2f/s, max %d in 1 s), %d bytes", p.Path, p.Messages, p.OpenS, p.PerSecond, p.MaxPerSecond, p.Bytes)
		if p.Error != "" {
			fmt.Fprintf(w, "; error: %s", p.Error)
		}
		fmt.Fprintln(w)
	}
}
