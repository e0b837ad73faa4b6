package queue

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash/fnv"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/oklog/ulid/v2"
	"google.golang.org/protobuf/proto"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
)

// storedRecord is the value kept under a notification id in the records
// bucket: where the current copy of the notification sits in the stream,
// and its delivery record.
type storedRecord struct {
	// seq is the stream sequence of the notification's current copy (a
	// replay makes a new copy); 0 while unknown.
	seq uint64
	rec *heraldv1.DeliveryRecord
}

const recordVersion = 1

var errBadRecord = errors.New("queue: malformed delivery record")

// encodeRecord lays a record out as: version byte, uvarint seq, protobuf
// DeliveryRecord.
func encodeRecord(r storedRecord) ([]byte, error) {
	b := make([]byte, 0, 16+proto.Size(r.rec))
	b = append(b, recordVersion)
	b = binary.AppendUvarint(b, r.seq)
	return proto.MarshalOptions{Deterministic: true}.MarshalAppend(b, r.rec)
}

func decodeRecord(b []byte) (storedRecord, error) {
	if len(b) == 0 || b[0] != recordVersion {
		return storedRecord{}, errBadRecord
	}
	seq, n := binary.Uvarint(b[1:])
	if n <= 0 {
		return storedRecord{}, errBadRecord
	}
	rec := &heraldv1.DeliveryRecord{}
	if err := proto.Unmarshal(b[1+n:], rec); err != nil {
		return storedRecord{}, errors.Join(errBadRecord, err)
	}
	return storedRecord{seq: seq, rec: rec}, nil
}

// validID reports whether id can be a subject token and a KV key: ASCII
// letters, digits, '-', '_' and '='.
func validID(id string) bool {
	if id == "" || len(id) > 200 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '=':
		default:
			return false
		}
	}
	return true
}

// Partition returns the partition of a notification: FNV-1a of its group key
// (of its id when the group key is empty) modulo partitions. Notifications
// of one partition are handed out strictly in publish order.
func Partition(groupKey, id string, partitions int) int {
	h := fnv.New32a()
	if groupKey != "" {
		h.Write([]byte(groupKey))
	} else {
		h.Write([]byte(id))
	}
	return int(h.Sum32() % uint32(partitions))
}

// partitionSubject is the subject notifications of partition p are stored
// on. The id travels in the Herald-Id header: a subject per notification
// cost JetStream an index entry in memory for as long as it was retained.
func partitionSubject(p int) string {
	return subjectPrefix + strconv.Itoa(p)
}

// storedID returns the id of a stored notification without decoding it:
// its Herald-Id header, or "".
func storedID(h nats.Header) string { return h.Get(hdrID) }

// idFromSubject returns the last token of a dead-letter subject.
func idFromSubject(subj string) string {
	if i := strings.LastIndexByte(subj, '.'); i >= 0 {
		return subj[i+1:]
	}
	return subj
}

// idTime returns the receipt time in an id the service made (a ULID, see
// internal/service). ok is false for any other id.
func idTime(id string) (t time.Time, ok bool) {
	u, err := ulid.ParseStrict(id)
	if err != nil {
		return time.Time{}, false
	}
	return ulid.Time(u.Time()), true
}

// threadKey is the threads bucket key of a sink and group key. Group keys
// are free text, so they are hashed; sink names are kept when KV-safe so an
// operator can read the bucket.
func threadKey(sink, groupKey string) string {
	g := sha256.Sum256([]byte(groupKey))
	s := sink
	if !validID(sink) {
		h := sha256.Sum256([]byte(sink))
		s = "h" + hex.EncodeToString(h[:8])
	}
	return s + "." + hex.EncodeToString(g[:16])
}

const pageTokenPrefix = "hq1:"

// encodePageToken makes the opaque token for "continue at stream sequence
// seq and below".
func encodePageToken(seq uint64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(pageTokenPrefix + strconv.FormatUint(seq, 10)))
}

func decodePageToken(tok string) (uint64, bool) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return 0, false
	}
	s, ok := strings.CutPrefix(string(b), pageTokenPrefix)
	if !ok {
		return 0, false
	}
	seq, err := strconv.ParseUint(s, 10, 64)
	if err != nil || seq == 0 {
		return 0, false
	}
	return seq, true
}
