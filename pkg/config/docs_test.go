package config

import (
	"flag"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the generated option table in docs/configuration.md")

const (
	docsPath    = "../../docs/configuration.md"
	beginMarker = "<!-- BEGIN GENERATED OPTIONS: go test ./pkg/config -update -->"
	endMarker   = "<!-- END GENERATED OPTIONS -->"
	naBegin     = "<!-- BEGIN GENERATED NOT-APPLICABLE: go test ./pkg/config -update -->"
	naEnd       = "<!-- END GENERATED NOT-APPLICABLE -->"
)

// notApplicableTable renders the Flink keys weir does not apply, with why.
func notApplicableTable() string {
	var b strings.Builder
	b.WriteString("| Flink key or prefix | Why it does not apply |\n|---|---|\n")
	for _, na := range notApplicable {
		p := na.prefix
		if strings.HasSuffix(p, ".") || strings.HasSuffix(p, "-") {
			p += "*"
		}
		b.WriteString("| `" + p + "` | " + strings.ReplaceAll(na.why, "|", `\|`) + " |\n")
	}
	return b.String()
}

// regenerate replaces what lies between begin and end in doc with body.
func regenerate(t *testing.T, doc, begin, end, body string) string {
	t.Helper()
	i, j := strings.Index(doc, begin), strings.Index(doc, end)
	if i < 0 || j < i {
		t.Fatalf("%s lacks the markers %q and %q", docsPath, begin, end)
	}
	return doc[:i] + begin + "\n" + body + doc[j:]
}

// optionsTable renders Options() as the markdown table of docs/configuration.md.
func optionsTable() string {
	var b strings.Builder
	b.WriteString("| Key | Scope | Type | Default | Description |\n|---|---|---|---|---|\n")
	esc := func(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
	for _, o := range Options() {
		typ := o.Type.String()
		if o.Type == TypeEnum {
			typ += ": " + strings.Join(o.Values, ", ")
		}
		def := "(none)"
		if o.Default != "" {
			def = "`" + o.Default + "`"
		}
		desc := o.Description
		if len(o.FallbackKeys) > 0 {
			desc += " Older name: `" + strings.Join(o.FallbackKeys, "`, `") + "`."
		}
		if o.Secret {
			desc += " Secret: never logged, shown or sent to TaskManagers."
		}
		scope := o.Scope.String()
		if o.Daemon != "" {
			scope += " (" + o.Daemon + ")"
		}
		b.WriteString("| `" + o.Key + "` | " + scope + " | " + esc(typ) + " | " + esc(def) + " | " + esc(desc) + " |\n")
	}
	return b.String()
}

// TestDocsUpToDate fails when the option table in docs/configuration.md does
// not match Options(), or the table of Flink keys that do not apply does not
// match notApplicable; go test ./pkg/config -update rewrites them.
func TestDocsUpToDate(t *testing.T) {
	data, err := os.ReadFile(docsPath)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	want := regenerate(t, doc, beginMarker, endMarker, optionsTable())
	want = regenerate(t, want, naBegin, naEnd, notApplicableTable())
	if want == doc {
		return
	}
	if *update {
		if err := os.WriteFile(docsPath, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("%s is out of date; run go test ./pkg/config -update", docsPath)
}
