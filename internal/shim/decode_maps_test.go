package shim

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// decodeBytesGeneric is decodeBytes with JSON v2's generic map arshaler
// instead of stringMap's own decoding: the reference that stringMap must
// match value for value and error for error.
func decodeBytesGeneric(data []byte) (*Message, error) {
	if len(strings.TrimSpace(string(data))) == 0 {
		return decodeBytes(data)
	}
	var w wireMessage
	if err := json.Unmarshal(data, &w, decodeOptions, genericMaps); err != nil {
		return nil, jsonError(err, int64(len(data)))
	}
	return w.check()
}

var genericMaps = json.WithUnmarshalers(json.UnmarshalFromFunc(func(dec *jsontext.Decoder, m *stringMap) error {
	return json.UnmarshalDecode(dec, (*map[string]string)(m))
}))

// compareWithGeneric checks that decodeBytes gives for body exactly what
// the generic map arshaler gives: the same message, or an error with the
// same field, offset and message.
func compareWithGeneric(t *testing.T, body []byte) {
	t.Helper()
	want, wantErr := decodeBytesGeneric(body)
	got, err := decodeBytes(body)
	switch {
	case (err == nil) != (wantErr == nil):
		t.Errorf("body %q: stringMap gives %v, the generic arshaler %v", body, err, wantErr)
	case err == nil && !reflect.DeepEqual(got, want):
		t.Errorf("body %q:\nstringMap gives %+v\ngeneric         %+v", body, *got, *want)
	case err != nil:
		var de, wantDE *DecodeError
		if !errors.As(err, &de) || !errors.As(wantErr, &wantDE) {
			t.Fatalf("body %q: errors %v, %v: want *DecodeErrors", body, err, wantErr)
		}
		if de.Field != wantDE.Field || de.Offset != wantDE.Offset || de.Reason != wantDE.Reason {
			t.Errorf("body %q:\nstringMap gives %q\ngeneric         %q", body, err, wantErr)
		}
	}
}

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
	// Long strings: past the string cache's limit and the scratch space.
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

func TestDecodeStringMapsMatch(t *testing.T) {
	for _, s := range mapEdgeCases {
		compareWithGeneric(t, []byte(s))
		compareWithV1(t, []byte(s))
	}
	for _, s := range v1Quirks {
		compareWithGeneric(t, []byte(s))
	}
}

// FuzzDecodeStringMaps holds stringMap to both the generic arshaler (same
// messages, same errors) and encoding/json (same accepted bodies and
// messages).
func FuzzDecodeStringMaps(f *testing.F) {
	addBodySeeds(f, mapEdgeCases, v1Quirks)
	f.Fuzz(func(t *testing.T, body []byte) {
		compareWithGeneric(t, body)
		compareWithV1(t, body)
	})
}

func TestStringMapValues(t *testing.T) {
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

func TestStringMapWrongValueError(t *testing.T) {
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

func TestStringCache(t *testing.T) {
	var c stringCache
	r := rand.New(rand.NewPCG(1, 2))
	seen := make(map[string]bool)
	for range 20000 {
		b := make([]byte, r.IntN(300))
		for i := range b {
			b[i] = "ab\x00é"[r.IntN(4)]
		}
		if got := c.make(b); got != string(b) {
			t.Fatalf("make(%q) = %q", b, got)
		}
		seen[string(b)] = true
	}
	if len(seen) < 1000 {
		t.Fatalf("only %d distinct strings: the test checks too little", len(seen))
	}
}
