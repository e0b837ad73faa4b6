package shim

import (
	stdjson "encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"
)

// decodeBytesV1 is decodeBytes as it was with encoding/json: the oracle that
// FuzzDecodeMatchesEncodingJSON holds the JSON v2 decoder to.
func decodeBytesV1(data []byte) (*Message, error) {
	var w wireMessage
	if err := stdjson.Unmarshal(data, &w); err != nil {
		return nil, jsonErrorV1(err)
	}
	return w.check()
}

func jsonErrorV1(err error) error {
	var syn *stdjson.SyntaxError
	if errors.As(err, &syn) {
		return &DecodeError{Offset: syn.Offset, Reason: "invalid JSON: " + syn.Error(), Err: err}
	}
	var typ *stdjson.UnmarshalTypeError
	if errors.As(err, &typ) {
		field := typ.Field
		if field == "" {
			field = "(payload)"
		}
		return &DecodeError{
			Field:  field,
			Offset: typ.Offset,
			Reason: fmt.Sprintf("got JSON %s, want %s", typ.Value, jsonKind(typ.Type)),
			Err:    err,
		}
	}
	return &DecodeError{Offset: -1, Reason: "invalid JSON: " + err.Error(), Err: err}
}

// FuzzDecodeMatchesEncodingJSON holds the JSON v2 decoder to what
// encoding/json did: a body is accepted by one exactly when the other
// accepts it, and both give the same message. Which error a body that both
// refuse gets may differ (v2 reports a type error it meets before a later
// syntax error; encoding/json checked the syntax of the whole body first).
func FuzzDecodeMatchesEncodingJSON(f *testing.F) {
	addBodySeeds(f, v1Quirks, mapEdgeCases)
	f.Fuzz(func(t *testing.T, body []byte) {
		compareWithV1(t, body)
	})
}

// v1Quirks are bodies on which JSON v2's defaults differ from encoding/json;
// decodeOptions must give encoding/json's answer for each.
var v1Quirks = []string{
	// Invalid UTF-8 and a lone surrogate become U+FFFD.
	"{\"version\":\"4\",\"status\":\"firing\",\"alerts\":[{\"status\":\"firing\",\"labels\":{\"pod\":\"a\xffb\",\"\xc3\":\"x\"}}]}",
	`{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"a":"\ud800"}}]}`,
	// A repeated name: the later value wins; objects merge.
	`{"version":"3","version":"4","status":"firing","alerts":[{"status":"firing","labels":{"a":"x"},"labels":{"b":"y","a":null}}]}`,
	`{"version":"4","version":null,"status":"firing","alerts":[{"status":"firing"}]}`,
	`{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"a":"x"}}],"alerts":[{"labels":{"b":"y"}}]}`,
	`{"version":"4","status":"firing","alerts":[{"status":"firing"},{"status":"firing"}],"alerts":[{"labels":{"b":"y"}}]}`,
	// Names match case-insensitively, but '_' and '-' count.
	`{"Version":"4","STATUS":"firing","Alerts":[{"Status":"firing","LABELS":{"a":"x"}}]}`,
	`{"version":"4","status":"firing","notificationReason":"x","notification-reason":"y","alerts":[{"status":"firing"}]}`,
	`{"version":"4","status":"firing","notification_reason":"x","NOTIFICATION_REASON":"y","alerts":[{"status":"firing"}]}`,
	// null leaves a field as it was.
	`{"version":"4","status":"firing","status":null,"receiver":"r","receiver":null,"truncatedAlerts":3,"truncatedAlerts":null,"alerts":[{"status":"firing","labels":{"a":null}}]}`,
	// Numbers.
	`{"version":"4","status":"firing","truncatedAlerts":-0,"alerts":[{"status":"firing"}]}`,
	`{"version":"4","status":"firing","truncatedAlerts":1.0,"alerts":[{"status":"firing"}]}`,
	`{"version":"4","status":"firing","truncatedAlerts":1E2,"alerts":[{"status":"firing"}]}`,
	`{"version":"4","status":"firing","truncatedAlerts":18446744073709551615,"alerts":[{"status":"firing"}]}`,
	// Unknown fields of any shape are ignored.
	`{"version":"4","status":"firing","x":{"y":[1,{"z":null}]},"alerts":[{"status":"firing","extra":[true]}]}`,
}

func TestDecodeMatchesEncodingJSONOnQuirks(t *testing.T) {
	for _, s := range v1Quirks {
		compareWithV1(t, []byte(s))
	}
}

func compareWithV1(t *testing.T, body []byte) {
	t.Helper()
	want, wantErr := decodeBytesV1(body)
	got, err := decodeBytes(body)
	switch {
	case (err == nil) != (wantErr == nil):
		t.Errorf("body %q: JSON v2 gives %v, encoding/json gave %v", body, err, wantErr)
	case err == nil && !reflect.DeepEqual(got, want):
		t.Errorf("body %q:\nJSON v2 gives  %+v\nencoding/json %+v", body, *got, *want)
	}
}
