package shim

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// mapEdgeCases are bodies with label and annotation objects at the edges of
// what JSON allows.
var mapEdgeCases = []string{
	// null for the whole object, after an object, and for a value.
	`{"version":"4","status":"firing","groupLabels":null,"alerts":[{"status":"firing","labels":null,"annotations":{"a":null}}]}`,
	`{"version":"4","status":"firing","commonLabels":{"a":"x"},"commonLabels":null,"alerts":[{"status":"firing","labels":{"a":"x","a":null}}]}`,
	// Values of other kinds, plain and nested; other kinds for the object.
	`{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"a":"x","b":12.5e3}}]}`,
	`{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"a":-0}}]}`,
	`{"version":"4","status":"firing","alerts":[{"status":"firing","annotations":{"a":false}}]}`,
	`{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"a":{"b":"c"}}}]}`,
	`{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"a":["b",{"c":[]}]}}]}`,
	`{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"a":[1,}}]}`,
	`{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"a":01}}]}`,
	`{"version":"4","status":"firing","routeLabels":"a=b","alerts":[{"status":"firing"}]}`,
	`{"version":"4","status":"firing","alerts":[{"status":"firing","labels":[["a","b"]]}]}`,
	`{"version":"4","status":"firing","alerts":[{"status":"firing","labels":7}]}`,
	`{"version":"4","status":"firing","alerts":[{"status":"firing","labels":tru}]}`,
	// Syntax errors inside and around an object.
	`{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"a" "b"}}]}`,
	`{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"a":"b" "c":"d"}}]}`,
	`{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{a:"b"}}]}`,
	`{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"a":"b",}}]}`,
	`{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{,}}]}`,
	`{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"a":"b"]}]}`,
	`{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"a":"b`,
	`{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"a":`,
	`{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{`,
	"{\"version\":\"4\",\"status\":\"firing\",\"alerts\":[{\"status\":\"firing\",\"labels\":{\"a\":\"b\x01\"}}]}",
	// A later member wins; objects merge, also across repeated alerts.
	`{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"a":"x","b":"y","a":"z"},"labels":{"c":"w","b":null}}]}`,
	`{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"a":"x"}},{"status":"firing"}],"alerts":[{"labels":{"b":"y"},"annotations":{}}]}`,
	// Escapes in names and values; names that need quoting in a field path.
	`{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"a\u0062":"\u003cb\u003e \u0026 \"q\" \\ \/ \b\f\n\r\t","\ud83d\ude00":"\u00e9\u4e16"}}]}`,
	`{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"a\u0062":"x","ab":"y"}}]}`,
	`{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"x/y~z":"a","x/y~z.w":1}}]}`,
	`{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"":"empty","a b":null,"\n":[]}}]}`,
	// Lone surrogates and invalid UTF-8 in names and values become U+FFFD.
	`{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"\ud800":"\udc00x","\ud800\ud800":"\uDFFF"}}]}`,
	"{\"version\":\"4\",\"status\":\"firing\",\"alerts\":[{\"status\":\"firing\",\"labels\":{\"\xff\":\"\xc3\",\"\xc3\\u00e9\":\"a\\n\xed\xa0\x80\",\"\xff\xfe\":\"\xf4\x90\x80\x80\"}}]}",
	"{\"version\":\"4\",\"status\":\"firing\",\"alerts\":[{\"status\":\"firing\",\"labels\":{\"\xff\":\"x\",\"\xfe\":\"y\",\"\xe2\x82\":1}}]}",
	// Whitespace everywhere.
	"{\"version\":\"4\",\"status\":\"firing\",\"alerts\":[{\"status\":\"firing\",\"labels\" :\n{ \"a\" :\t\"b\" ,\r\n\"c\" : null } }]}",
	// Long strings.
	`{"version":"4","status":"firing","alerts":[{"status":"firing","annotations":{"` + strings.Repeat("n", 300) + `":"` + strings.Repeat("v\\u00e9", 1500) + `","d":"` + strings.Repeat("w", 257) + `"}}]}`,
	// Very many members, with names repeated.
	manyLabels(5000),
}

// manyLabels is a webhook with one alert of n labels, every tenth of which
// repeats an earlier name.
func manyLabels(n int) string {
	var b strings.Builder
	b.WriteString(`{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		k := i
		if i%10 == 9 {
			k = i / 2
		}
		fmt.Fprintf(&b, `"label_%d":"value %d"`, k, i)
	}
	b.WriteString(`}}]}`)
	return b.String()
}

// TestDecodeMapsMatchEncodingJSON holds the decoding of label and
// annotation objects at the edges of JSON to what encoding/json did.
func TestDecodeMapsMatchEncodingJSON(t *testing.T) {
	for _, s := range mapEdgeCases {
		compareWithV1(t, []byte(s))
	}
}

func TestDecodeMapValues(t *testing.T) {
	const body = `{"version":"4","status":"firing","commonLabels":{"a":"x"},"commonLabels":null,` +
		`"alerts":[{"status":"firing","labels":{"a":"x","b":"y","a":"z","c":"w"},"labels":{"b":null,"d\u00e9":"\u003e \ud800"},` +
		`"annotations":{}}]}`
	m, err := Decode(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if m.CommonLabels != nil {
		t.Errorf("CommonLabels = %#v, want nil after null", m.CommonLabels)
	}
	want := map[string]string{"a": "z", "b": "", "c": "w", "dé": "> \uFFFD"}
	if got := m.Alerts[0].Labels; !reflect.DeepEqual(got, want) {
		t.Errorf("Labels = %#v, want %#v", got, want)
	}
	if got := m.Alerts[0].Annotations; got == nil || len(got) != 0 {
		t.Errorf("Annotations = %#v, want an empty map", got)
	}
}

func TestDecodeMapWrongValueError(t *testing.T) {
	body := `{"version":"4","status":"firing","alerts":[{"status":"firing"},{"status":"firing","labels":{"a":"x","a b":{"c":1}}}]}`
	_, err := Decode(strings.NewReader(body))
	var de *DecodeError
	if !errors.As(err, &de) {
		t.Fatalf("err = %v, want a *DecodeError", err)
	}
	const want = `alertmanager webhook: field alerts[1].labels["a b"]: got JSON object, want string (at byte 107)`
	if err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	if body[de.Offset-1] != '{' {
		t.Errorf("Offset %d is at %q, want the value's first byte", de.Offset, body[de.Offset-1:])
	}
}
