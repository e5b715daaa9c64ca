package main

import (
	"errors"
	"fmt"
	"image/color"
	"io"
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

var (
	spillwayColor = color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
	chanColor     = color.RGBA{R: 0xbb, G: 0xbb, B: 0xbb, A: 0xff}
)

// writePlot draws, to a PNG file, each workload's throughput (millions of
// messages per second) above its p99 latency (µs), Spillway's bar beside
// the channel's.
func writePlot(path string, m machine, rs []result) error {
	var names []string
	var spRate, chRate, spP99, chP99 plotter.Values
	for _, r := range rs {
		switch r.Impl {
		case "spillway":
			names = append(names, r.Workload)
			spRate = append(spRate, r.MsgsPerSec/1e6)
			spP99 = append(spP99, r.P99Ns/1e3)
		case "chan":
			chRate = append(chRate, r.MsgsPerSec/1e6)
			chP99 = append(chP99, r.P99Ns/1e3)
		}
	}
	if len(spRate) == 0 || len(spRate) != len(chRate) {
		return fmt.Errorf("nothing to plot")
	}
	rate, err := bars("spillway bench: "+m.String(), "million messages per second", names, spRate, chRate)
	if err != nil {
		return err
	}
	lat, err := bars(fmt.Sprintf("p99 latency, send to receive (1 in %d timed)", timedEvery), "µs", names, spP99, chP99)
	if err != nil {
		return err
	}
	width, height := vg.Points(float64(120+110*len(names))), 7*vg.Inch
	img := vgimg.New(width, height)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadTop: vg.Points(4), PadBottom: vg.Points(4), PadX: vg.Points(4), PadY: vg.Points(8)}
	canvases := plot.Align([][]*plot.Plot{{rate}, {lat}}, tiles, dc)
	rate.Draw(canvases[0][0])
	lat.Draw(canvases[1][0])
	png := vgimg.PngCanvas{Canvas: img}
	return writeFile(path, png.WriteTo)
}

// bars is a bar chart of Spillway's values beside the channel's.
func bars(title, ylabel string, names []string, sp, ch plotter.Values) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font.Size = vg.Points(9)
	p.Y.Label.Text = ylabel
	w := vg.Points(18)
	spBars, err := plotter.NewBarChart(sp, w)
	if err != nil {
		return nil, err
	}
	spBars.Color = spillwayColor
	spBars.Offset = -w / 2
	chBars, err := plotter.NewBarChart(ch, w)
	if err != nil {
		return nil, err
	}
	chBars.Color = chanColor
	chBars.Offset = w / 2
	p.Add(spBars, chBars)
	p.Legend.Add("Spillway", spBars)
	p.Legend.Add("buffered channel", chBars)
	p.Legend.Top = true
	p.NominalX(names...)
	return p, nil
}

// writeFile creates path and writes it with write.
func writeFile(path string, write func(io.Writer) (int64, error)) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, f.Close()) }()
	_, err = write(f)
	return err
}
