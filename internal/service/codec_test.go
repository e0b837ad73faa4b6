package service

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
)

// FuzzJSONCodec feeds arbitrary JSON to the codec HandlerOptions installs,
// for a Publish and a ListNotifications request: it must not panic, must
// accept exactly what protojson accepts when unknown fields are ignored
// unless an enum name is unknown, and must then decode the same message.
func FuzzJSONCodec(f *testing.F) {
	for _, s := range []string{
		`{"notification":{"source":"t","title":"x","severity":"SEVERITY_WARNING","labels":{"a":"b"},"alerts":[{"status":"STATUS_FIRING","startsAt":"2026-11-27T03:00:00Z"}]}}`,
		`{"notification":{"severity":"SEVERITY_URGENT","alerts":[{"status":"resolved"}]},"extra":1}`,
		`{"state":"DELIVERY_STATE_NOPE","severity":"SEVERITY_INFO","page_size":3}`,
		`{"state":77,"pageToken":"x","unknown":{"state":"X"}}`,
		`{"notification":{"received_at":"2026-11-27T03:00:00Z","links":{"runbook":"r"}}}`,
		`{"notification":{"severity":"SEVERITY_INFO","severity":"NOPE"}}`,
		`[]`, `null`, `{}`, `{"notification":null}`,
	} {
		f.Add(s)
	}
	codec := jsonCodec{"json"}
	f.Fuzz(func(t *testing.T, s string) {
		for _, newMsg := range []func() proto.Message{
			func() proto.Message { return &heraldv1.PublishRequest{} },
			func() proto.Message { return &heraldv1.ListNotificationsRequest{} },
		} {
			got, lenient := newMsg(), newMsg()
			err := codec.Unmarshal([]byte(s), got)
			lerr := protojson.UnmarshalOptions{DiscardUnknown: true}.Unmarshal([]byte(s), lenient)
			switch {
			case err == nil && lerr != nil:
				t.Fatalf("accepted what protojson refuses (%v): %q", lerr, s)
			case err == nil && !proto.Equal(got, lenient):
				t.Fatalf("decoded %v, protojson %v", got, lenient)
			case err != nil && lerr == nil:
				if !strings.Contains(err.Error(), "unknown value") {
					t.Fatalf("refused %q for something but an unknown enum name: %v", s, err)
				}
				if protojson.Unmarshal([]byte(s), newMsg()) == nil {
					t.Fatalf("refused %q, which strict protojson accepts: %v", s, err)
				}
			}
		}
	})
}
