package webhook

import (
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzVerify: Verify never panics on any header and body, and accepts
// only a signature made with the secret over that very body.
func FuzzVerify(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"version":"1"}`)
	f.Add(Sign("s", body, now), body)
	f.Add("t=1800000000,v1=", []byte{})
	f.Add("t=,v1=,v1", []byte("x"))
	f.Add("t=99999999999999999999,v1=00", []byte("x"))
	f.Add(",,,=,=", []byte(nil))
	f.Fuzz(func(t *testing.T, header string, b []byte) {
		err := Verify("s", header, b, time.Minute, now)
		if err == nil && Verify("s", header, append(b, 'x'), time.Minute, now) == nil {
			t.Errorf("header %q verifies two different bodies", header)
		}
	})
}

// FuzzMessageID: any answer of a receiver gives a short, printable id.
func FuzzMessageID(f *testing.F) {
	f.Add([]byte(`{"message_id":"TICKET-1"}`))
	f.Add([]byte(`{"message_id":12345678901234567890}`))
	f.Add([]byte(`{"message_id":{"a":1}}`))
	f.Add([]byte(`[1,2]`))
	f.Add([]byte(`{"message_id":"a\r\nb"}`))
	f.Fuzz(func(t *testing.T, answer []byte) {
		id := messageID(answer, "fallback")
		if id == "" || len(id) > maxMessageID || !validHeaderValue(id) || !utf8.ValidString(id) {
			t.Errorf("messageID(%q) = %q", answer, id)
		}
	})
}
