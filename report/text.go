package report

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode"
	"unicode/utf8"
)

// TextOptions tunes WriteText.
type TextOptions struct {
	// Verbose also lists info findings. They are counted in the summary either way.
	Verbose bool
}

// WriteText renders r as a table for a terminal: per image a header line and a
// layer table, the image's findings (expected and actual with full digests),
// findings not tied to a listed image, the problems (what could not be
// checked) and a one-line verdict. r should be normalized (Builder.Finish and
// Merge return normalized reports). Control characters from the input (tar
// entry names, messages) are escaped so they cannot drive the terminal.
func WriteText(w io.Writer, r *Report, opts TextOptions) error {
	ew := &errWriter{w: w}
	tw := tabwriter.NewWriter(ew, 0, 8, 2, ' ', 0)
	p := textPrinter{tw: tw, opts: opts}

	if r.Source != "" || r.Command != "" {
		p.linef("layercheck %s", clean(strings.TrimSpace(r.Command+" "+r.Source)))
		p.linef("")
	}
	byImage, other := groupFindings(r)
	for i := range r.Images {
		img := &r.Images[i]
		p.image(img, byImage[imageKey{img.Name, img.Platform}])
		p.linef("")
	}
	if len(other) > 0 {
		p.linef("Findings not tied to a listed image:")
		p.findings(other, false)
		p.linef("")
	}
	if len(r.Problems) > 0 {
		p.linef("Problems (could not check):")
		for _, pr := range r.Problems {
			if s := pr.Subject.String(); s != "" {
				p.linef("  %s: %s", clean(s), clean(pr.Message))
			} else {
				p.linef("  %s", clean(pr.Message))
			}
		}
		p.linef("")
	}
	p.linef("%s", verdictLine(r.Summary))
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("writing text report: %w", err)
	}
	if ew.err != nil {
		return fmt.Errorf("writing text report: %w", ew.err)
	}
	return nil
}

// WriteQuiet writes only the verdict line of r, as WriteText ends.
func WriteQuiet(w io.Writer, r *Report) error {
	if _, err := io.WriteString(w, verdictLine(r.Summary)+"\n"); err != nil {
		return fmt.Errorf("writing verdict: %w", err)
	}
	return nil
}

type textPrinter struct {
	tw   *tabwriter.Writer
	opts TextOptions
}

// linef writes one line through the tabwriter; cells are separated by \t.
func (p *textPrinter) linef(format string, args ...any) {
	fmt.Fprintf(p.tw, format+"\n", args...)
}

func (p *textPrinter) image(img *Image, fs []Finding) {
	head := []string{clean(img.Name)}
	if img.Platform != "" {
		head = append(head, clean(img.Platform))
	}
	if img.ManifestDigest != "" {
		head = append(head, " manifest "+clean(Short(img.ManifestDigest)))
	}
	if img.ConfigDigest != "" {
		head = append(head, " image ID "+clean(Short(img.ConfigDigest)))
	}
	head = append(head, " "+strings.ToUpper(string(img.Status)))
	// No tabs in the header: it must not join the layer table's columns.
	p.linef("%s", strings.Join(head, " "))

	if len(img.Layers) == 0 {
		p.linef("  no layers")
	} else {
		p.linef("  LAYER\tSTATUS\tCOMPRESSION\tSIZE\tDIGEST\tDIFFID\tCHAINID")
		for _, l := range img.Layers {
			p.linef("  %d\t%s\t%s\t%s\t%s\t%s\t%s", l.Index, l.Status, dash(clean(l.Compression)),
				humanSize(l.Size), dash(clean(Short(l.Digest))), dash(clean(Short(l.DiffID))), dash(clean(Short(l.ChainID))))
		}
	}
	if img.Analysis != nil {
		p.linef("  %s", analysisSummary(img.Analysis))
	}
	if len(fs) > 0 {
		p.linef("  Findings:")
		p.findings(fs, true)
	}
}

// findings lists fs, two spaces deeper than their heading. inImage drops the
// image and platform from each subject: the image header already names them.
func (p *textPrinter) findings(fs []Finding, inImage bool) {
	indent := "  "
	if inImage {
		indent = "    "
	}
	hidden := 0
	for _, f := range fs {
		if f.Severity == Info && !p.opts.Verbose {
			hidden++
			continue
		}
		subj := f.Subject
		if inImage {
			subj.Image, subj.Platform = "", ""
		}
		subj.Path = "" // on its own line: paths are long
		what := clean(f.Message)
		if s := subj.String(); s != "" {
			what = clean(s) + ": " + what
		}
		p.linef("%s%s\t%s\t%s", indent, strings.ToUpper(f.Severity.String()), clean(string(f.Check)), what)
		// Continuation lines keep the tabwriter block: two empty cells put
		// them under the message.
		if f.Subject.Path != "" {
			p.linef("%s\t\tpath:     %s", indent, clean(f.Subject.Path))
		}
		if f.Expected != "" {
			p.linef("%s\t\texpected: %s", indent, clean(f.Expected))
		}
		if f.Actual != "" {
			p.linef("%s\t\tactual:   %s", indent, clean(f.Actual))
		}
	}
	if hidden > 0 {
		p.linef("%s(%s not shown; --verbose lists them)", indent, plural(hidden, "info"))
	}
}

type imageKey struct{ name, platform string }

// groupFindings splits the findings of r by the image they name. Findings
// that name no image, or an image not in r.Images, are returned in other.
// Both keep the report's order.
func groupFindings(r *Report) (byImage map[imageKey][]Finding, other []Finding) {
	byImage = map[imageKey][]Finding{}
	known := map[imageKey]bool{}
	for _, img := range r.Images {
		known[imageKey{img.Name, img.Platform}] = true
	}
	for _, f := range r.Findings {
		k := imageKey{f.Subject.Image, f.Subject.Platform}
		if f.Subject.Image != "" && known[k] {
			byImage[k] = append(byImage[k], f)
		} else {
			other = append(other, f)
		}
	}
	return byImage, other
}

// verdictOf returns s.Verdict, or derives it from the counts when the summary
// was never computed.
func verdictOf(s Summary) Verdict {
	if s.Verdict != "" {
		return s.Verdict
	}
	switch {
	case s.Errors > 0:
		return VerdictFailed
	case s.Problems > 0:
		return VerdictIncomplete
	}
	return VerdictOK
}

// verdictLine is the one-line summary:
//
//	OK: 3 images, 12 layers verified, 0 problems
//	FAILED: 2 errors, 1 warning; 2 images, 7 layers checked
//	INCOMPLETE: 1 problem, 0 errors; 1 image, 3 layers checked
func verdictLine(s Summary) string {
	v := verdictOf(s)
	scope := plural(s.Images, "image") + ", " + plural(s.Layers, "layer")
	var parts []string
	switch v {
	case VerdictOK:
		parts = append(parts, scope+" verified")
	case VerdictIncomplete:
		parts = append(parts, plural(s.Problems, "problem"), plural(s.Errors, "error"))
	default:
		parts = append(parts, plural(s.Errors, "error"))
	}
	if s.Warnings > 0 {
		parts = append(parts, plural(s.Warnings, "warning"))
	}
	if s.Infos > 0 {
		parts = append(parts, plural(s.Infos, "info"))
	}
	switch v {
	case VerdictOK:
		parts = append(parts, plural(s.Problems, "problem"))
		return "OK: " + strings.Join(parts, ", ")
	case VerdictIncomplete:
		return "INCOMPLETE: " + strings.Join(parts, ", ") + "; " + scope + " checked"
	case VerdictFailed:
		if s.Problems > 0 {
			parts = append(parts, plural(s.Problems, "problem"))
		}
		return "FAILED: " + strings.Join(parts, ", ") + "; " + scope + " checked"
	}
	return strings.ToUpper(clean(string(v))) + ": " + strings.Join(parts, ", ") + "; " + scope + " checked"
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}

// humanSize renders a byte count with binary units: "512 B", "3.2 MiB".
func humanSize(n int64) string {
	if n < 1024 {
		return strconv.FormatInt(n, 10) + " B"
	}
	const units = "KMGTPE"
	f := float64(n)
	i := -1
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	return strconv.FormatFloat(f, 'f', 1, 64) + " " + string(units[i]) + "iB"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// clean escapes control characters and invalid UTF-8 so that input-derived
// strings cannot move the cursor, recolour the terminal or break table cells.
func clean(s string) string {
	ok := true
	for _, r := range s {
		if r == utf8.RuneError || unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case unicode.IsControl(r) || r == '\u2028' || r == '\u2029':
			q := strconv.QuoteRuneToASCII(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// errWriter remembers the first write error and drops later writes.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	if err != nil {
		e.err = err
	}
	return n, err
}
