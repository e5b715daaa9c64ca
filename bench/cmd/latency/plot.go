package main

import (
	"errors"
	"image/color"
	"math"
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/spillway-io/spillway/internal/loadgen"
)

var colors = map[string]color.Color{
	"spillway":            color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	"spillway spill":      color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
	"spillway persistent": color.RGBA{R: 0x94, G: 0x67, B: 0xbd, A: 0xff},
	"chan":                color.RGBA{R: 0x99, G: 0x99, B: 0x99, A: 0xff},
	"nats":                color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
	"floor":               color.RGBA{R: 0x00, G: 0x00, B: 0x00, A: 0xff},
}

// writePlot draws one chart per rate, side by side: each pipe's latency
// (log scale) at p50, p90, p99, p99.9, p99.99 and the maximum, the
// percentiles spaced by their nines.
func writePlot(path string, rows []loadgen.Row) (err error) {
	var plots []*plot.Plot
	for _, rate := range loadgen.Rates {
		p := plot.New()
		p.Title.Text = "send to receive at " + loadgen.RateName(rate)
		p.Y.Label.Text = "latency (µs)"
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
		p.X.Tick.Marker = plot.ConstantTicks([]plot.Tick{{Value: 0, Label: "p50"}, {Value: 1, Label: "p90"}, {Value: 2, Label: "p99"}, {Value: 3, Label: "p99.9"}, {Value: 4, Label: "p99.99"}, {Value: 5, Label: "max"}})
		p.Legend.Top, p.Legend.Left = true, true
		for _, r := range rows {
			if r.Result.Rate != rate {
				continue
			}
			var xys plotter.XYs
			for i, q := range []float64{0.5, 0.9, 0.99, 0.999, 0.9999} {
				xys = append(xys, plotter.XY{X: float64(i), Y: math.Max(float64(r.Result.Latency.Quantile(q))/1e3, 0.01)})
			}
			xys = append(xys, plotter.XY{X: 5, Y: math.Max(float64(r.Result.Latency.Max())/1e3, 0.01)})
			line, points, err := plotter.NewLinePoints(xys)
			if err != nil {
				return err
			}
			c := colors[r.Impl]
			line.Color, points.Color = c, c
			p.Add(line, points)
			p.Legend.Add(r.Impl, line, points)
		}
		plots = append(plots, p)
	}
	img := vgimg.New(vg.Points(float64(330*len(plots))), 5*vg.Inch)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 1, Cols: len(plots), PadTop: vg.Points(6), PadBottom: vg.Points(6), PadX: vg.Points(10), PadLeft: vg.Points(4), PadRight: vg.Points(8)}
	canvases := plot.Align([][]*plot.Plot{plots}, tiles, dc)
	for i, p := range plots {
		p.Draw(canvases[0][i])
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, f.Close()) }()
	_, err = vgimg.PngCanvas{Canvas: img}.WriteTo(f)
	return err
}
