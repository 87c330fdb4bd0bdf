package console

import (
	"fmt"
	"strings"
	"time"

	"github.com/jobsbroker/jobsbroker/store"
)

// chart is a stacked area chart of a job's executions by status over time,
// drawn as SVG on the server (no script, no style attribute: it passes the
// console's content security policy).
type chart struct {
	Bands        []band
	Empty        bool
	From, To     time.Time
	Max          int64
	Summary      string
	Source       string
	Width        int
	Height       int
	TicksX       []tick
	TicksY       []tick
	PlotX, PlotY int
	PlotW, PlotH int
}

type band struct {
	statusInfo
	Points string // SVG polygon points
}

type tick struct {
	Pos    float64
	Label  string
	Anchor string // text-anchor of an x label: the outer ones stay inside the picture
}

// makeChart draws hist (with the job's current counts as its last point).
func makeChart(hist []sample, j *store.Job, fromRecords bool, now time.Time) chart {
	ch := chart{Width: 640, Height: 200, PlotX: 56, PlotY: 8, PlotW: 572, PlotH: 164}
	cur := sample{At: now, Counts: countsOf(&j.ProcessDetails)}
	if !j.CompletedAt.IsZero() {
		cur.At = j.CompletedAt
	}
	pts := append([]sample{{At: j.CreatedAt}}, hist...)
	if last := pts[len(pts)-1]; cur.At.After(last.At) {
		pts = append(pts, cur)
	} else {
		pts[len(pts)-1].Counts = cur.Counts
	}
	for i := 1; i < len(pts); i++ { // drop points from before the job (clock changes)
		if pts[i].At.Before(pts[0].At) {
			pts[i].At = pts[0].At
		}
	}
	ch.From, ch.To = pts[0].At, pts[len(pts)-1].At
	for _, p := range pts {
		ch.Max = max(ch.Max, sum(p.Counts))
	}
	switch {
	case fromRecords:
		ch.Source = "Rebuilt from the executions' timestamps, then recorded while this console watched."
	case len(hist) > 0:
		ch.Source = "Recorded while a console on this node watched the job, since " + when(hist[0].At) + "; earlier points are not known."
	}
	if ch.Max == 0 {
		ch.Empty = true
		ch.Summary = "No executions yet."
		return ch
	}
	span := ch.To.Sub(ch.From)
	if span <= 0 {
		span = time.Second
	}
	x := func(t time.Time) float64 {
		return float64(ch.PlotX) + float64(ch.PlotW)*float64(t.Sub(ch.From))/float64(span)
	}
	y := func(v int64) float64 {
		return float64(ch.PlotY+ch.PlotH) - float64(ch.PlotH)*float64(v)/float64(ch.Max)
	}
	index := map[store.ExecutionStatus]int{}
	for i, s := range store.Statuses {
		index[s] = i
	}
	lower := make([]int64, len(pts))
	for _, st := range barOrder {
		upper := make([]int64, len(pts))
		any := false
		for i, p := range pts {
			upper[i] = lower[i] + p.Counts[index[st.Status]]
			if upper[i] != lower[i] {
				any = true
			}
		}
		if any {
			var b strings.Builder
			for i, p := range pts {
				fmt.Fprintf(&b, "%.1f,%.1f ", x(p.At), y(upper[i]))
			}
			for i := len(pts) - 1; i >= 0; i-- {
				fmt.Fprintf(&b, "%.1f,%.1f ", x(pts[i].At), y(lower[i]))
			}
			ch.Bands = append(ch.Bands, band{statusInfo: st, Points: strings.TrimSpace(b.String())})
		}
		lower = upper
	}
	for i := 0; i <= 4; i++ {
		v := ch.Max * int64(i) / 4
		ch.TicksY = append(ch.TicksY, tick{Pos: y(v), Label: num(v)})
	}
	for i := 0; i <= 3; i++ {
		t := ch.From.Add(span * time.Duration(i) / 3)
		anchor := "middle"
		switch i {
		case 0:
			anchor = "start"
		case 3:
			anchor = "end"
		}
		ch.TicksX = append(ch.TicksX, tick{Pos: x(t), Label: clockLabel(t, span), Anchor: anchor})
	}
	var words []string
	for _, st := range barOrder {
		if n := cur.Counts[index[st.Status]]; n > 0 {
			words = append(words, num(n)+" "+strings.ToLower(st.Label))
		}
	}
	ch.Summary = fmt.Sprintf("From %s to %s, executions grew to %s; now %s.", when(ch.From), when(ch.To), num(ch.Max), strings.Join(words, ", "))
	return ch
}

func clockLabel(t time.Time, span time.Duration) string {
	t = t.UTC()
	switch {
	case span < 10*time.Second:
		return t.Format("15:04:05.0")
	case span < 2*time.Minute:
		return t.Format("15:04:05")
	case span < 48*time.Hour:
		return t.Format("15:04")
	}
	return t.Format("Jan 2")
}
