package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/layercheck/layercheck/compare"
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

// result is what a reporting command concluded: its report, the first
// "could not check" error (or the cancellation) and the severity that fails.
type result struct {
	rep      *report.Report
	firstErr error
	failOn   report.Severity
}

// exitCode is the one place that turns a command's outcome into its exit
// code: res is what a reporting command concluded (nil for the others),
// err what its Run returned.
func exitCode(res *result, err error) int {
	cause := err
	if res != nil && res.firstErr != nil {
		cause = res.firstErr
	}
	var oe *outputError
	var ue *usageError
	var ae *compare.ArgumentError
	switch {
	case errors.Is(err, context.Canceled) || errors.Is(cause, context.Canceled):
		return ExitInterrupted
	case errors.As(err, &oe):
		return ExitCannotCheck
	case res != nil && failing(res.rep, res.failOn):
		return ExitFindings
	case errors.As(err, &ue) || errors.As(cause, &ue) || errors.As(cause, &ae):
		return ExitUsage
	case err != nil || cause != nil:
		return ExitCannotCheck
	case res != nil && len(res.rep.Problems) > 0:
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
type usageError struct {
	msg string
	err error
}

func (e *usageError) Error() string { return e.msg }
func (e *usageError) Unwrap() error { return e.err }

// usage marks err as a mistake in the command line (exit 80).
func usage(err error) error {
	var ue *usageError
	if err == nil || errors.As(err, &ue) {
		return err
	}
	return &usageError{msg: err.Error(), err: err}
}

// outputError is a report that could not be written (exit 3, whatever the
// report says).
type outputError struct{ err error }

func (e *outputError) Error() string { return e.err.Error() }
func (e *outputError) Unwrap() error { return e.err }

// conclude ends every command that produces a report: it writes rep to the
// outputs and records the outcome the exit code follows from (rep and
// firstErr, the first "could not check" error or the cancellation). It
// returns what main prints on stderr: the interruption, or firstErr when
// printErr is set and nothing at all could be checked (no image in the
// report). done names the work in the interruption message ("verified",
// "audited", "compared").
func conclude(env *Env, g *Globals, outs []output, rep *report.Report, firstErr error, done string, printErr bool) error {
	failOn, _ := report.ParseSeverity(g.FailOn)
	env.result = &result{rep: rep, firstErr: firstErr, failOn: failOn}
	if werr := writeOutputs(env, outs, rep, g); werr != nil {
		return &outputError{werr}
	}
	if errors.Is(firstErr, context.Canceled) {
		return fmt.Errorf("interrupted; the report covers what was %s so far", done)
	}
	if printErr && firstErr != nil && len(rep.Images) == 0 {
		return firstErr
	}
	return nil
}
