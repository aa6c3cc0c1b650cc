// Package policy judges a finished report against what a CI run requires:
// platforms present, references pinned by digest, layer sizes, media types
// and wasted bytes. Each violation is an error finding with a policy-* check
// ID, so it fails the run like any other finding. It is a pure function over
// a report.Report: it reads nothing and verifies nothing; the command line
// maps its flags to a Policy.
package policy
