package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"
)

// outputFormat is the value of -o/--output. It validates while flags are
// parsed, so a bad value is a usage error (exit 2) like any other bad flag.
type outputFormat string

const (
	outputTable outputFormat = "table"
	outputJSON  outputFormat = "json"
)

func (o *outputFormat) String() string { return string(*o) }
func (o *outputFormat) Type() string   { return "format" }
func (o *outputFormat) Set(s string) error {
	switch outputFormat(s) {
	case outputTable, outputJSON:
		*o = outputFormat(s)
		return nil
	}
	return fmt.Errorf("must be %q or %q", outputTable, outputJSON)
}

// humanTimeLayout is how tables show instants, in the local time zone.
const humanTimeLayout = "2006-01-02 15:04:05"

// jsonTimeLayout is RFC 3339 with milliseconds (the API's precision), always
// in UTC so that JSON output does not depend on the machine's zone.
const jsonTimeLayout = "2006-01-02T15:04:05.000Z07:00"

// jsonTime formats a Unix-millisecond instant for JSON; 0 means unknown and
// gives "" (omitted by the ",omitempty" tags).
func jsonTime(ms int64) string {
	if ms == 0 {
		return ""
	}
	return time.UnixMilli(ms).UTC().Format(jsonTimeLayout)
}

// humanTime formats a Unix-millisecond instant for a table; 0 gives "-".
func humanTime(ms int64, loc *time.Location) string {
	if ms == 0 {
		return "-"
	}
	return time.UnixMilli(ms).In(loc).Format(humanTimeLayout)
}

// humanDuration formats d the way kubectl shows ages: the two most significant
// units, so a glance is enough (350ms, 12s, 1m23s, 2h5m, 3d4h).
func humanDuration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%ds", int64(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm%ds", int64(d/time.Minute), int64(d%time.Minute/time.Second))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%dm", int64(d/time.Hour), int64(d%time.Hour/time.Minute))
	default:
		day := 24 * time.Hour
		return fmt.Sprintf("%dd%dh", int64(d/day), int64(d%day/time.Hour))
	}
}

// jobDuration is how long a job has run: to its end if it ended, to now if
// not; "-" before it started.
func jobDuration(startMS, endMS int64, now time.Time) string {
	if startMS == 0 {
		return "-"
	}
	end := now
	if endMS != 0 {
		end = time.UnixMilli(endMS)
	}
	return humanDuration(end.Sub(time.UnixMilli(startMS)))
}

// humanSize formats a byte count with binary units (512 B, 1.2 MiB).
func humanSize(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	units := []string{"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	v := float64(n) / 1024
	i := 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	return fmt.Sprintf("%.1f %s", v, units[i])
}

// orDash shows an empty table cell as "-", so that columns stay readable and
// `awk '{print $N}'` keeps working.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// table writes aligned columns: upper-case headers, two spaces between
// columns, no trailing padding.
type table struct {
	tw *tabwriter.Writer
}

func newTable(w io.Writer, headers ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)}
	if len(headers) > 0 {
		t.row(headers...)
	}
	return t
}

func (t *table) row(cells ...string) {
	// A tab or a newline inside a cell would break the alignment or fake a
	// row; printable escapes them.
	for i, c := range cells {
		cells[i] = printable(c)
	}
	fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
}

// printable makes a string that came from the JobManager or the command
// line safe to print on a terminal: control characters (C0 such as \n, \t
// and ESC, DEL, C1 such as the one-byte CSI), the Unicode line and
// paragraph separators, format characters such as bidirectional overrides,
// and invalid UTF-8 are escaped as strconv.Quote writes them (\n, \x1b,
// \u202e, \xff). Everything else, other scripts and spaces included, is
// kept. So a job name cannot move the cursor, recolor the terminal, hide
// text or fake a row of a table. It is idempotent. JSON output needs none
// of this: encoding/json escapes what JSON must.
func printable(s string) string {
	i := 0
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		if !keep(r, size) {
			break
		}
		i += size
	}
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	b.WriteString(s[:i])
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case keep(r, size):
			b.WriteString(s[i : i+size])
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		default:
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1]) // without the quotes
		}
		i += size
	}
	return b.String()
}

// keep reports whether a decoded rune prints as itself: a letter, mark,
// number, punctuation, symbol or space (unicode.IsGraphic), never a
// control, format or separator character or an invalid byte.
func keep(r rune, size int) bool {
	return (r != utf8.RuneError || size > 1) && unicode.IsGraphic(r)
}

func (t *table) flush() error { return t.tw.Flush() }

// writeJSON writes v indented, with a final newline, as kubectl does. It does
// not escape HTML: the output is for jq and scripts, and operator chains are
// named "a -> b".
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
