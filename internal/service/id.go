package service

import (
	"crypto/rand"
	"time"

	"github.com/oklog/ulid/v2"
)

// newID returns a ULID: 26 Crockford base32 digits, 48 bits of Unix
// milliseconds then 80 random bits, so ids sort by receipt time to the
// millisecond. The queue reads the time back (ulid.ParseStrict) to find a
// notification that has no delivery record yet.
func newID(now time.Time) string {
	return ulid.MustNew(ulid.Timestamp(now), rand.Reader).String()
}
