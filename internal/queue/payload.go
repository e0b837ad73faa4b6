package queue

import (
	"errors"
	"fmt"

	"github.com/klauspost/compress/s2"
	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
)

// hdrEncoding names how a message's payload is compressed. Without it the
// payload is the plain protobuf Notification, as herald wrote before it
// compressed, so old data dirs and dead letters stay readable.
const hdrEncoding = "Herald-Encoding"

// encodingS2 is S2 block compression (github.com/klauspost/compress/s2).
const encodingS2 = "s2"

// compressMin is the smallest marshalled notification worth compressing;
// below it the saving is a few bytes at best.
const compressMin = 512

// maxDecoded bounds what one compressed payload may expand to, so a corrupt
// length prefix cannot make herald allocate without limit. Notifications
// are far smaller: the service refuses bodies over a few MiB.
const maxDecoded = 64 << 20

var errBadPayload = errors.New("queue: malformed payload")

// encodeNotification marshals n for the stream and compresses it when that
// pays. Alertmanager notifications repeat label names and values across
// their alerts, so S2 typically shrinks them to a third: fewer bytes
// written, and JetStream's block caches (which hold every message written
// in the last seconds) take a third of the memory. It sets or clears h's
// encoding header to match.
func encodeNotification(n *heraldv1.Notification, h nats.Header) ([]byte, error) {
	b, err := proto.Marshal(n)
	if err != nil {
		return nil, err
	}
	h.Del(hdrEncoding)
	if len(b) < compressMin {
		return b, nil
	}
	c := s2.Encode(make([]byte, s2.MaxEncodedLen(len(b))), b)
	if len(c) >= len(b)-len(b)/8 {
		return b, nil
	}
	h.Set(hdrEncoding, encodingS2)
	return c, nil
}

// decodeNotification reverses encodeNotification.
func decodeNotification(h nats.Header, data []byte) (*heraldv1.Notification, error) {
	switch enc := h.Get(hdrEncoding); enc {
	case "":
	case encodingS2:
		n, err := s2.DecodedLen(data)
		if err != nil {
			return nil, fmt.Errorf("%w: s2: %w", errBadPayload, err)
		}
		if n > maxDecoded {
			return nil, fmt.Errorf("%w: s2 payload claims %d bytes", errBadPayload, n)
		}
		if data, err = s2.Decode(make([]byte, n), data); err != nil {
			return nil, fmt.Errorf("%w: s2: %w", errBadPayload, err)
		}
	default:
		return nil, fmt.Errorf("%w: unknown %s %q", errBadPayload, hdrEncoding, enc)
	}
	n := &heraldv1.Notification{}
	if err := proto.Unmarshal(data, n); err != nil {
		return nil, err
	}
	return n, nil
}
