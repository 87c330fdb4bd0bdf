package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// progress rewrites one status line on a terminal (stderr) every second.
type progress struct {
	w      io.Writer
	label  string
	status func(elapsed time.Duration) string
	start  time.Time
	stop   chan struct{}
	done   chan struct{}
	once   sync.Once
	width  int
}

// startProgress shows label and status(elapsed) every second until Stop;
// with a nil writer it shows nothing.
func startProgress(w io.Writer, label string, status func(elapsed time.Duration) string) *progress {
	p := &progress{w: w, label: label, status: status, start: time.Now(), stop: make(chan struct{}), done: make(chan struct{})}
	if w == nil {
		close(p.done)
		return p
	}
	go func() {
		defer close(p.done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				p.show()
			case <-p.stop:
				p.show()
				fmt.Fprintln(p.w)
				return
			}
		}
	}()
	return p
}

func (p *progress) show() {
	el := time.Since(p.start)
	line := fmt.Sprintf("[%s %5.1fs] %s", p.label, el.Seconds(), p.status(el))
	pad := max(0, p.width-len(line))
	p.width = len(line)
	fmt.Fprintf(p.w, "\r%s%s", line, strings.Repeat(" ", pad))
}

// Stop shows the final status and ends the line.
func (p *progress) Stop() {
	p.once.Do(func() { close(p.stop) })
	<-p.done
}
