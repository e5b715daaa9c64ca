package main

import (
	"fmt"
	"image/color"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// writePlot draws the throughput of each workload, Spillway's bar beside
// the channel's, in millions of messages per second, to a PNG file.
func writePlot(path string, m machine, rs []result) error {
	var names []string
	var sp, ch plotter.Values
	for _, r := range rs {
		switch r.Impl {
		case "spillway":
			names = append(names, r.Workload)
			sp = append(sp, r.MsgsPerSec/1e6)
		case "chan":
			ch = append(ch, r.MsgsPerSec/1e6)
		}
	}
	if len(sp) == 0 || len(sp) != len(ch) {
		return fmt.Errorf("nothing to plot")
	}
	p := plot.New()
	p.Title.Text = "spillway bench: " + m.String()
	p.Title.TextStyle.Font.Size = vg.Points(9)
	p.Y.Label.Text = "million messages per second"
	w := vg.Points(18)
	spBars, err := plotter.NewBarChart(sp, w)
	if err != nil {
		return err
	}
	spBars.Color = color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
	spBars.Offset = -w / 2
	chBars, err := plotter.NewBarChart(ch, w)
	if err != nil {
		return err
	}
	chBars.Color = color.RGBA{R: 0xbb, G: 0xbb, B: 0xbb, A: 0xff}
	chBars.Offset = w / 2
	p.Add(spBars, chBars)
	p.Legend.Add("Spillway", spBars)
	p.Legend.Add("buffered channel", chBars)
	p.Legend.Top = true
	p.NominalX(names...)
	return p.Save(vg.Points(float64(120+110*len(names))), 4*vg.Inch, path)
}
