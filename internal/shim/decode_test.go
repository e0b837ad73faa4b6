package shim

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"testing/iotest"
)

func TestDecodeErrors(t *testing.T) {
	const okAlert = `{"status":"firing","fingerprint":"a","startsAt":"2026-11-27T10:00:00Z"}`
	cases := []struct {
		name  string
		body  string
		field string // want DecodeError.Field
		has   string // want in the message
	}{
		{"empty", "", "", "empty body"},
		{"blank", " \n\t", "", "empty body"},
		{"bad JSON", `{"version":"4",}`, "", "invalid JSON"},
		{"truncated JSON", `{"version":"4","alerts":[`, "", "invalid JSON"},
		{"trailing data", `{"version":"4","status":"firing","alerts":[` + okAlert + `]} {}`, "", "invalid JSON"},
		{"not an object", `[1,2]`, "(payload)", "got JSON array, want object"},
		{"missing version", `{"status":"firing","alerts":[` + okAlert + `]}`, "version", `missing: herald accepts Alertmanager webhook version "4"`},
		{"null version", `{"version":null,"status":"firing","alerts":[` + okAlert + `]}`, "version", "missing"},
		{"other version", `{"version":"3","status":"firing","alerts":[` + okAlert + `]}`, "version", `unsupported version "3"`},
		{"numeric version", `{"version":4,"status":"firing","alerts":[` + okAlert + `]}`, "version", "got JSON number, want string"},
		{"no alerts", `{"version":"4","status":"firing","alerts":[]}`, "alerts", "no alerts"},
		{"null alerts", `{"version":"4","status":"firing","alerts":null}`, "alerts", "no alerts"},
		{"alerts not an array", `{"version":"4","status":"firing","alerts":{}}`, "alerts", "got JSON object, want array"},
		{"missing status", `{"version":"4","alerts":[` + okAlert + `]}`, "status", "missing"},
		{"unknown status", `{"version":"4","status":"pending","alerts":[` + okAlert + `]}`, "status", `"pending" is not`},
		{"label of wrong type", `{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"a":1}}]}`, "alerts[0].labels.a", "got JSON number, want string"},
		{"odd label name of wrong type", `{"version":"4","status":"firing","alerts":[` + okAlert + `,{"status":"firing","labels":{"a.b c":null,"x y":true}}]}`, `alerts[1].labels["x y"]`, "got JSON boolean, want string"},
		{"labels of wrong type", `{"version":"4","status":"firing","commonLabels":["a"],"alerts":[` + okAlert + `]}`, "commonLabels", "got JSON array, want object of strings"},
		{"negative truncatedAlerts", `{"version":"4","status":"firing","truncatedAlerts":-1,"alerts":[` + okAlert + `]}`, "truncatedAlerts", "want non-negative integer"},
		{"alert status", `{"version":"4","status":"firing","alerts":[` + okAlert + `,{"status":"weird"}]}`, "alerts[1].status", `"weird" is not`},
		{"bad startsAt", `{"version":"4","status":"firing","alerts":[{"status":"firing","startsAt":"yesterday"}]}`, "alerts[0].startsAt", "not an RFC 3339 time"},
		{"numeric endsAt", `{"version":"4","status":"firing","alerts":[{"status":"firing","endsAt":0}]}`, "alerts[0].endsAt", "got JSON number, want string"},
		{"syntax error in a label", `{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"a":"b",}}]}`, "", "invalid JSON in alerts[0].labels: "},
		{"endsAt out of range", `{"version":"4","status":"resolved","alerts":[{"status":"resolved","endsAt":"9999-12-31T23:00:00-05:00"}]}`, "alerts[0].endsAt", "out of range"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Decode(strings.NewReader(tc.body))
			if m != nil {
				t.Errorf("Decode returned a message with error %v", err)
			}
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("Decode error = %v (%T), want *DecodeError", err, err)
			}
			if de.Field != tc.field {
				t.Errorf("Field = %q, want %q (error %q)", de.Field, tc.field, err)
			}
			if !strings.Contains(err.Error(), tc.has) {
				t.Errorf("error %q does not contain %q", err, tc.has)
			}
			if tc.field != "" && !strings.Contains(err.Error(), "field "+tc.field) {
				t.Errorf("error %q does not name field %q", err, tc.field)
			}
		})
	}
}

func TestDecodeSyntaxErrorOffset(t *testing.T) {
	_, err := Decode(strings.NewReader(`{"version":"4", x}`))
	var de *DecodeError
	if !errors.As(err, &de) {
		t.Fatalf("err = %v", err)
	}
	if de.Offset != 17 || !strings.Contains(err.Error(), "at byte 17") {
		t.Errorf("offset %d, error %q; want byte 17", de.Offset, err)
	}
}

func TestDecodeReadErrorIsNotADecodeError(t *testing.T) {
	boom := errors.New("connection reset")
	m, err := Decode(iotest.ErrReader(boom))
	var de *DecodeError
	if m != nil || !errors.Is(err, boom) || errors.As(err, &de) {
		t.Errorf("Decode = %v, %v; want the read error, not a *DecodeError", m, err)
	}
}

func TestDecodeKeepsNewerFields(t *testing.T) {
	m, err := Decode(strings.NewReader(mustRead(t, "testdata/convert/newer_fields.json")))
	if err != nil {
		t.Fatal(err)
	}
	if m.NotificationReason != "all alerts resolved" {
		t.Errorf("NotificationReason = %q", m.NotificationReason)
	}
	if m.RouteLabels["team"] != "payments" {
		t.Errorf("RouteLabels = %v", m.RouteLabels)
	}
}

func TestDecodeFiringEndsAtYearOneIsZero(t *testing.T) {
	m, err := Decode(strings.NewReader(mustRead(t, "../../deploy/examples/firing.json")))
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range m.Alerts {
		if !a.EndsAt.IsZero() {
			t.Errorf("alert %d EndsAt = %v, want zero", i, a.EndsAt)
		}
		if a.StartsAt.IsZero() || a.StartsAt.Location().String() != "UTC" {
			t.Errorf("alert %d StartsAt = %v, want a UTC time", i, a.StartsAt)
		}
	}
}

func mustQueryUnescape(t *testing.T, s string) string {
	t.Helper()
	d, err := url.QueryUnescape(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
