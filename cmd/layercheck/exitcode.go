package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/layercheck/layercheck/report"
)

// Exit codes. This is the only place that decides them; README.md and
// --help show the same table. New codes may be added: treat any unknown
// non-zero code as a failure.
const (
	ExitOK          = 0   // everything verified, no error findings
	ExitFindings    = 1   // verification finished and found problems
	ExitCannotCheck = 3   // could not verify: unreadable, unsupported, I/O, network
	ExitUsage       = 80  // usage error (kong's parse-error code)
	ExitInterrupted = 130 // interrupted (SIGINT/SIGTERM)
)

const exitCodeHelp = `Exit codes:
  0    everything verified, no error findings
  1    verification finished and found problems (error findings;
       warnings too with --fail-on warning)
  3    could not verify: unreadable input, unsupported format, I/O or
       network error (nothing wrong was found in what could be checked)
  80   usage error
  130  interrupted (Ctrl-C, SIGTERM); what was verified so far is printed`

// exitCode maps the outcome of a command to its exit code. rep may be nil
// when nothing could be checked.
func exitCode(rep *report.Report, err error, failOn report.Severity) int {
	switch {
	case errors.Is(err, context.Canceled):
		return ExitInterrupted
	case rep != nil && failing(rep, failOn):
		return ExitFindings
	case err != nil:
		var ue *usageError
		if errors.As(err, &ue) {
			return ExitUsage
		}
		return ExitCannotCheck
	case rep != nil && len(rep.Problems) > 0:
		return ExitCannotCheck
	}
	return ExitOK
}

func failing(rep *report.Report, failOn report.Severity) bool {
	for _, f := range rep.Findings {
		if f.Severity >= failOn && f.Severity > report.Info {
			return true
		}
	}
	return false
}

// usageError is a mistake in the command line found after parsing.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// conclude ends every command that produces a report: it writes rep to the
// outputs, then sets the exit code from the report and from firstErr (the
// first "could not check" error, or the cancellation). It returns what main
// prints on stderr: the interruption, or firstErr when printErr is set and
// nothing at all could be checked (no image in the report). done names the
// work in the interruption message ("verified", "audited", "compared").
func conclude(env *Env, g *Globals, outs []output, rep *report.Report, firstErr error, done string, printErr bool) error {
	if werr := writeOutputs(env, outs, rep, g); werr != nil {
		env.Code = ExitCannotCheck
		return werr
	}
	failOn, _ := report.ParseSeverity(g.FailOn)
	env.Code = exitCode(rep, firstErr, failOn)
	if env.Code == ExitInterrupted {
		return fmt.Errorf("interrupted; the report covers what was %s so far", done)
	}
	if printErr && firstErr != nil && len(rep.Images) == 0 {
		return firstErr
	}
	return nil
}
