package shim

import (
	"bytes"
	"encoding/binary"
	"math/bits"
	"reflect"
	"sync"
	"unicode/utf8"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// stringMap is the wire type of a webhook's label and annotation objects.
// It decodes as JSON v2's generic map arshaler does under decodeOptions,
// with the same values and errors, but reads members straight from the
// decoder and writes them with a plain map assignment: the generic
// arshaler, with reflection for every member, took about half of the time
// decoding a webhook took.
type stringMap map[string]string

// UnmarshalJSONFrom decodes a JSON object into *m: it merges into a map
// that is already there (as decodeOptions' legacy merge does), a later
// member wins over an earlier one of the same name, null stores "", and any
// other non-string value is the *json.SemanticError the generic arshaler
// gives. Anything but an object (null, another kind, a syntax error) goes
// to the generic arshaler for map[string]string, before anything is read,
// so that it is decoded and reported as it always was.
func (m *stringMap) UnmarshalJSONFrom(dec *jsontext.Decoder) error {
	if dec.PeekKind() != '{' {
		return json.UnmarshalDecode(dec, (*map[string]string)(m))
	}
	if _, err := dec.ReadToken(); err != nil {
		return err
	}
	if *m == nil {
		*m = make(stringMap)
	}
	c := stringCaches.Get().(*stringCache)
	defer stringCaches.Put(c)
	for dec.PeekKind() != '}' {
		name, err := dec.ReadValue()
		if err != nil {
			return err
		}
		k := c.unquote(name)
		val, err := dec.ReadValue()
		if err != nil {
			return err
		}
		switch val.Kind() {
		case '"':
			(*m)[k] = c.unquote(val)
		case 'n':
			(*m)[k] = ""
		default:
			return &json.SemanticError{
				ByteOffset:  dec.InputOffset() - int64(len(val)),
				JSONPointer: dec.StackPointer(),
				JSONKind:    val.Kind(),
				GoType:      stringType,
			}
		}
	}
	_, err := dec.ReadToken()
	return err
}

var stringType = reflect.TypeFor[string]()

// A stringCache holds recently made strings by a hash of their bytes, so
// that names and values repeated across alerts and webhooks (label names,
// alertname, severity, namespace) share one string instead of allocating
// each time, as JSON v2's own cache does for the generic arshaler.
type stringCache struct {
	strs [256]string
	// buf is scratch space for unquoting a string with escapes.
	buf []byte
}

// maxScratch bounds the scratch space a pooled stringCache keeps.
const maxScratch = 4 << 10

var stringCaches = sync.Pool{New: func() any { return new(stringCache) }}

// unquote returns the string that the JSON string literal v, as the
// decoder read it, stands for; invalid UTF-8 becomes U+FFFD.
func (c *stringCache) unquote(v jsontext.Value) string {
	s := v[1 : len(v)-1]
	if bytes.IndexByte(s, '\\') < 0 && utf8.Valid(s) {
		return c.make(s)
	}
	// The decoder has checked v's syntax: the only error left is invalid
	// UTF-8, which AppendUnquote has replaced.
	b, _ := jsontext.AppendUnquote(c.buf[:0], v)
	if cap(b) <= maxScratch {
		c.buf = b
	}
	return c.make(b)
}

// make returns string(b), from c when c holds it.
func (c *stringCache) make(b []byte) string {
	if len(b) < 2 || len(b) > 256 {
		return string(b) // the runtime does not allocate for one byte
	}
	// Hash the first and last (up to) eight bytes, in constant time.
	var h uint32
	switch {
	case len(b) >= 8:
		lo := binary.LittleEndian.Uint64(b)
		hi := binary.LittleEndian.Uint64(b[len(b)-8:])
		h = mix(uint32(lo), uint32(lo>>32)) ^ mix(uint32(hi), uint32(hi>>32))
	case len(b) >= 4:
		h = mix(binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint32(b[len(b)-4:]))
	default:
		h = mix(uint32(binary.LittleEndian.Uint16(b)), uint32(binary.LittleEndian.Uint16(b[len(b)-2:])))
	}
	i := h % uint32(len(c.strs))
	if s := c.strs[i]; s == string(b) {
		return s
	}
	s := string(b)
	c.strs[i] = s
	return s
}

// mix hashes two words into one: XXH32's rounds on eight bytes, without
// the final avalanche, as JSON v2's string cache does.
func mix(lo, hi uint32) uint32 {
	const (
		prime3 = 0xc2b2ae3d
		prime4 = 0x27d4eb2f
		prime5 = 0x165667b1
	)
	h := prime5 + uint32(8)
	h += lo * prime3
	h = bits.RotateLeft32(h, 17) * prime4
	h += hi * prime3
	h = bits.RotateLeft32(h, 17) * prime4
	return h
}
