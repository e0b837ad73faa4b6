package teams

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/testutil"
	"github.com/herald-notify/herald/sinks"
)

// The tests in this file hand the cards the sink sends to Microsoft's own
// Adaptive Cards parser, the npm package adaptivecards, run under node by
// testdata/cardcheck/check.js: every card must parse for the version it
// declares without an event, pass the card's own validation, and keep
// every property when the parser writes it back. They also hand the
// card's texts to markdown-it, a CommonMark parser that reads more
// Markdown than any Teams client, to check that text from an alert can
// change a card's words and never its markup. testdata/cardcheck/
// install.sh installs the pinned packages; without node or the packages
// the tests fail in CI (CI=true) and are skipped elsewhere.

const cardCheckDir = "testdata/cardcheck"

// checkCards runs check.js on bodies and returns each one's problems.
func checkCards(t *testing.T, bodies ...[]byte) [][]string {
	t.Helper()
	raw := make([]json.RawMessage, len(bodies))
	for i, b := range bodies {
		raw[i] = b
	}
	var results [][]string
	runCheck(t, raw, &results)
	return results
}

// markupOf runs "check.js markup" on texts and returns the shape of each
// one's Markdown.
func markupOf(t *testing.T, texts []string) []string {
	t.Helper()
	var results []string
	runCheck(t, texts, &results, "markup")
	return results
}

// runCheck runs check.js with args, in as JSON, and decodes its answer,
// an array as long as in, into out.
func runCheck[T any, R any](t *testing.T, in []T, out *[]R, args ...string) {
	t.Helper()
	dir, err := filepath.Abs(cardCheckDir)
	if err != nil {
		t.Fatal(err)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		unavailable(t, "node is not installed")
	}
	for _, pkg := range []string{"adaptivecards", "markdown-it"} {
		want, got := pinnedVersion(t, dir, pkg), installedVersion(dir, pkg)
		switch {
		case got == "":
			unavailable(t, pkg+" is not installed in "+dir)
		case got != want:
			unavailable(t, fmt.Sprintf("%s %s is installed in %s, but package.json pins %s", pkg, got, dir, want))
		}
	}
	input, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, append([]string{"check.js"}, args...)...)
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(input)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	answer, err := cmd.Output()
	if err != nil {
		t.Fatalf("check.js: %v\n%s", err, stderr.String())
	}
	if err := json.Unmarshal(answer, out); err != nil || len(*out) != len(in) {
		t.Fatalf("check.js answered %d results for %d inputs (%v): %.300s", len(*out), len(in), err, answer)
	}
}

// unavailable skips t, or fails it in CI (testutil.Missing).
func unavailable(t *testing.T, why string) {
	t.Helper()
	testutil.Missing(t, why, "run sinks/teams/"+cardCheckDir+"/install.sh; it needs node and npm")
}

func pinnedVersion(t *testing.T, dir, name string) string {
	var pkg struct {
		Dependencies map[string]string `json:"dependencies"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "package.json"))
	if err == nil {
		err = json.Unmarshal(b, &pkg)
	}
	v := pkg.Dependencies[name]
	if err != nil || v == "" {
		t.Fatalf("%s/package.json does not pin %s: %v", cardCheckDir, name, err)
	}
	return v
}

func installedVersion(dir, name string) string {
	var pkg struct {
		Version string `json:"version"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "node_modules", name, "package.json"))
	if err != nil || json.Unmarshal(b, &pkg) != nil {
		return ""
	}
	return pkg.Version
}

// TestCardsValidUnderParser checks the golden cards, the cards of every
// card version, cards shortened to every size limit, the card of last
// resort and a card of a user's template.
func TestCardsValidUnderParser(t *testing.T) {
	type card struct {
		name string
		body []byte
	}
	var cards []card
	for _, c := range goldenCases {
		b, err := os.ReadFile(filepath.Join("testdata", c.name+".golden"))
		if err != nil {
			t.Fatal(err)
		}
		cards = append(cards, card{"golden " + c.name, b})
	}
	for v := range cardVersions {
		r := &renderer{version: v, max: DefaultMaxCardBytes}
		for _, c := range goldenCases {
			b, _ := r.render(defaultTemplates, c.n(), c.to)
			cards = append(cards, card{c.name + " " + v, b})
		}
	}
	big := many(300)
	big.Text = strings.Repeat("The summary goes on and on. ", 400)
	for i := range 40 {
		big.Labels[fmt.Sprintf("label_%02d", i)] = strings.Repeat("v", 200)
		for _, a := range big.Alerts {
			a.Labels[fmt.Sprintf("label_%02d", i)] = strings.Repeat("v", 200)
		}
	}
	for _, max := range []int{4000, 6000, 10000, DefaultMaxCardBytes, TeamsMessageLimit} {
		r := &renderer{version: DefaultCardVersion, max: max}
		b, _ := r.render(defaultTemplates, big, sinks.Target{})
		cards = append(cards, card{fmt.Sprintf("fitted to %d", max), b})
	}
	r := testRenderer()
	for _, max := range []int{4000, DefaultMaxCardBytes} {
		dr := &renderer{version: DefaultCardVersion, max: max}
		b, _ := dr.renderDigest(defaultTemplates, append(digestOf(), hostile(), big), sinks.Target{})
		cards = append(cards, card{fmt.Sprintf("digest fitted to %d", max), b})
	}
	d := messageData(firing())
	cards = append(cards, card{"minimal", r.encode(r.minimal(d))})
	noAlerts := &heraldv1.Notification{Id: "svc", Source: "billing", Status: heraldv1.Status_STATUS_FIRING, Title: "Invoice run failed"}
	b, _ := r.render(defaultTemplates, noAlerts, sinks.Target{})
	cards = append(cards, card{"service notification", b})

	bodies := make([][]byte, len(cards))
	for i, c := range cards {
		bodies[i] = c.body
	}
	for i, problems := range checkCards(t, bodies...) {
		for _, p := range problems {
			t.Errorf("%s: %s", cards[i].name, p)
		}
	}
	t.Logf("%d cards checked", len(cards))
}

// TestCardCheckCatchesMistakes makes sure check.js fails what it should.
func TestCardCheckCatchesMistakes(t *testing.T) {
	body, _ := testRenderer().render(defaultTemplates, firing(), sinks.Target{})
	mutate := func(f func(content map[string]any)) []byte {
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatal(err)
		}
		f(m["attachments"].([]any)[0].(map[string]any)["content"].(map[string]any))
		b, _ := json.Marshal(m)
		return b
	}
	el := func(c map[string]any, i int) map[string]any { return c["body"].([]any)[i].(map[string]any) }
	bad := [][]byte{
		mutate(func(c map[string]any) { el(c, 1)["colr"] = "attention" }),
		mutate(func(c map[string]any) { el(c, 1)["weight"] = "heavy" }),
		mutate(func(c map[string]any) { c["body"] = append(c["body"].([]any), map[string]any{"type": "Carousel"}) }),
		mutate(func(c map[string]any) { c["version"] = "1.2"; el(c, 1)["style"] = "heading" }),
		mutate(func(c map[string]any) { c["type"] = "MessageCard" }),
	}
	for i, problems := range checkCards(t, bad...) {
		if len(problems) == 0 {
			t.Errorf("mistake %d passed check.js: %s", i, bad[i])
		}
	}
}
