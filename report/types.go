package report

import (
	"encoding/json"
	"fmt"
	"sort"
)

// Status grades one image or layer.
type Status string

// Statuses, from best to worst.
const (
	StatusOK      Status = "ok"
	StatusWarning Status = "warning"
	StatusFailed  Status = "failed"
)

func rank(s Status) int {
	switch s {
	case StatusFailed:
		return 2
	case StatusWarning:
		return 1
	}
	return 0
}

func worse(a, b Status) Status {
	if rank(b) > rank(a) {
		return b
	}
	return a
}

// Verdict is the outcome of a whole run.
type Verdict string

// Verdicts. The exit code follows from them (cmd/layercheck/exitcode.go).
const (
	VerdictOK         Verdict = "ok"         // everything verified, no error findings
	VerdictFailed     Verdict = "failed"     // verification found problems
	VerdictIncomplete Verdict = "incomplete" // something could not be checked, nothing found wrong
)

var severityNames = [...]string{Info: "info", Warning: "warning", Error: "error"}

// String returns "info", "warning" or "error".
func (s Severity) String() string {
	if s >= 0 && int(s) < len(severityNames) {
		return severityNames[s]
	}
	return fmt.Sprintf("severity(%d)", int(s))
}

// ParseSeverity parses "info", "warning" or "error".
func ParseSeverity(name string) (Severity, error) {
	for i, n := range severityNames {
		if n == name {
			return Severity(i), nil
		}
	}
	return 0, fmt.Errorf("unknown severity %q (want info, warning or error)", name)
}

// MarshalJSON writes the severity as its name.
func (s Severity) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// UnmarshalJSON reads a severity name.
func (s *Severity) UnmarshalJSON(b []byte) error {
	var name string
	if err := json.Unmarshal(b, &name); err != nil {
		return err
	}
	v, err := ParseSeverity(name)
	if err != nil {
		return err
	}
	*s = v
	return nil
}

func sortChecks(c []CheckInfo) {
	sort.Slice(c, func(i, j int) bool { return c[i].ID < c[j].ID })
}
