package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/report/metrics"
)

type output struct {
	format string // table, json, sarif, junit, quiet
	file   string // "" for stdout
}

var formats = map[string]bool{"table": true, "json": true, "sarif": true, "junit": true, "prometheus": true}

func parseOutputs(specs []string, quiet bool) ([]output, error) {
	var outs []output
	stdout := 0
	for _, s := range specs {
		for _, part := range strings.Split(s, ",") {
			f, file, _ := strings.Cut(strings.TrimSpace(part), "=")
			if !formats[f] {
				return nil, &usageError{msg: fmt.Sprintf("unknown output format %q (want table, json, sarif, junit or prometheus, optionally =FILE)", f)}
			}
			if f == "prometheus" && (file == "" || file == "-") {
				return nil, &usageError{msg: "-o prometheus needs a file (-o prometheus=FILE): it is written atomically for node-exporter's textfile collector"}
			}
			if file == "" || file == "-" {
				file = ""
				stdout++
			}
			outs = append(outs, output{format: f, file: file})
		}
	}
	if stdout == 0 {
		if quiet {
			outs = append(outs, output{format: "quiet"})
		} else {
			outs = append(outs, output{format: "table"})
		}
	} else if quiet {
		for i := range outs {
			if outs[i].file == "" && outs[i].format == "table" {
				outs[i].format = "quiet"
			}
		}
	}
	if stdout > 1 {
		return nil, &usageError{msg: "only one output format can go to stdout; give the others a file (FORMAT=FILE)"}
	}
	return outs, nil
}

func writeOutputs(env *Env, outs []output, rep *report.Report, g *Globals) error {
	for _, o := range outs {
		if o.format == "prometheus" {
			if err := writeMetrics(env, o.file, rep); err != nil {
				return fmt.Errorf("writing prometheus metrics: %w", err)
			}
			continue
		}
		var w io.Writer = env.Stdout
		var f *os.File
		if o.file != "" {
			var err error
			f, err = os.Create(o.file)
			if err != nil {
				return fmt.Errorf("writing %s report: %w", o.format, err)
			}
			w = f
		}
		err := writeReport(w, o.format, rep, g)
		if f != nil {
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			return fmt.Errorf("writing %s report: %w", o.format, err)
		}
	}
	return nil
}

func writeReport(w io.Writer, format string, rep *report.Report, g *Globals) error {
	switch format {
	case "json":
		return report.WriteJSON(w, rep)
	case "sarif":
		return report.WriteSARIF(w, rep)
	case "junit":
		return report.WriteJUnit(w, rep)
	case "quiet":
		return report.WriteQuiet(w, rep)
	case "table":
		if g.analysisTable {
			return report.WriteAnalysis(w, rep)
		}
		return report.WriteText(w, rep, report.TextOptions{Verbose: g.Verbose})
	default:
		return report.WriteText(w, rep, report.TextOptions{Verbose: g.Verbose})
	}
}

// writeMetrics writes the Prometheus metrics of the run to file, atomically:
// the per-store audit host prepared (env.audit), else the report as one
// store.
func writeMetrics(env *Env, file string, rep *report.Report) error {
	a := env.audit
	if a == nil {
		var firstErr error
		if env.result != nil {
			firstErr = env.result.firstErr
		}
		fa := metrics.FromReport(rep, env.start, time.Since(env.start), firstErr)
		a = &fa
	}
	exp := env.exporter
	if exp == nil {
		exp = metrics.New(toolVersion())
	}
	exp.Update(*a)
	return exp.WriteFile(file)
}
