package service

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"unicode/utf8"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// HandlerOptions are the Connect handler options the NotificationService
// needs: a JSON codec that refuses an enum name it does not know, such as
// "severity": "SEVERITY_URGENT", naming the field and the names it knows.
// Connect's own JSON codec drops such a value, so the field reads as unset
// and the caller is told it is required, or a list filter silently matches
// everything.
func HandlerOptions() []connect.HandlerOption {
	return []connect.HandlerOption{
		connect.WithCodec(jsonCodec{"json"}),
		connect.WithCodec(jsonCodec{"json; charset=utf-8"}),
	}
}

// jsonCodec is Connect's protojson codec, unknown fields still ignored (so
// that newer clients can talk to older servers), unknown enum names refused.
type jsonCodec struct{ name string }

var _ connect.Codec = jsonCodec{}

func (c jsonCodec) Name() string { return c.name }

func (c jsonCodec) IsBinary() bool { return false }

func (c jsonCodec) Marshal(v any) ([]byte, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("%T is not a protobuf message", v)
	}
	return protojson.Marshal(m)
}

// MarshalStable is Marshal with protojson's unstable whitespace removed,
// for Connect GET requests.
func (c jsonCodec) MarshalStable(v any) ([]byte, error) {
	b, err := c.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// Unmarshal decodes strictly first, which nearly every request passes at
// the cost of one decode. Only when that fails and a lenient decode passes
// does it look for what the strict decode stumbled on: an unknown field is
// ignored, an unknown enum name is an error.
func (c jsonCodec) Unmarshal(data []byte, v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("%T is not a protobuf message", v)
	}
	if len(data) == 0 {
		return errors.New("zero-length payload is not a valid JSON object")
	}
	if protojson.Unmarshal(data, m) == nil {
		return nil
	}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(data, m); err != nil {
		return fmt.Errorf("unmarshal into %T: %w", v, err)
	}
	var tree any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&tree); err != nil {
		// protojson accepted what encoding/json does not: nothing to find.
		return nil
	}
	var errs []error
	unknownEnumNames(tree, m.ProtoReflect().Descriptor(), "", &errs)
	return errors.Join(errs...)
}

// maxEnumErrors bounds the unknown enum names reported for one message.
const maxEnumErrors = 10

// unknownEnumNames appends an error for every enum name in the JSON value v
// of message type md that the enum does not define, naming its field from
// path as validation does ("notification.alerts[2].status").
func unknownEnumNames(v any, md protoreflect.MessageDescriptor, path string, errs *[]error) {
	obj, ok := v.(map[string]any)
	if !ok || md.FullName().Parent() == "google.protobuf" {
		// Well-known types have JSON forms of their own, with no enums.
		return
	}
	fields := md.Fields()
	for _, name := range slices.Sorted(maps.Keys(obj)) {
		fd := fields.ByJSONName(name)
		if fd == nil {
			fd = fields.ByTextName(name)
		}
		if fd == nil {
			continue // an unknown field, ignored
		}
		fp := string(fd.Name())
		if path != "" {
			fp = path + "." + fp
		}
		val := obj[name]
		switch {
		case fd.IsMap():
			entries, _ := val.(map[string]any)
			for _, k := range slices.Sorted(maps.Keys(entries)) {
				checkValue(entries[k], fd.MapValue(), entryField(fp, k), errs)
			}
		case fd.IsList():
			items, _ := val.([]any)
			for i, item := range items {
				checkValue(item, fd, fp+"["+strconv.Itoa(i)+"]", errs)
			}
		default:
			checkValue(val, fd, fp, errs)
		}
		if len(*errs) >= maxEnumErrors {
			return
		}
	}
}

// checkValue checks one JSON value of field fd (a list element or map value
// for those).
func checkValue(v any, fd protoreflect.FieldDescriptor, path string, errs *[]error) {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		unknownEnumNames(v, fd.Message(), path, errs)
	case protoreflect.EnumKind:
		s, ok := v.(string)
		if !ok {
			return // a number: validation checks it
		}
		if ed := fd.Enum(); ed.Values().ByName(protoreflect.Name(s)) == nil {
			*errs = append(*errs, invalid(path, "unknown value %s, want one of %s", quoteShort(s), enumNames(ed)))
		}
	}
}

// quoteShort quotes s for an error message, shortened to its first 64 bytes.
func quoteShort(s string) string {
	const maxShown = 64
	if len(s) <= maxShown {
		return strconv.Quote(s)
	}
	n := maxShown
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return strconv.Quote(s[:n]) + "…"
}
