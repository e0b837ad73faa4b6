package telemetry

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
)

// known lists every attribute key declared in attrs.go.
var known = map[attribute.Key]bool{
	AttrNotificationID: true, AttrGroupKeyHash: true, AttrSeverity: true, AttrStatus: true,
	AttrRoute: true, AttrSink: true, AttrChannel: true, AttrAttempt: true, AttrErrorClass: true,
	AttrFallbackReason: true, AttrFallbackFrom: true, AttrChatMessageID: true, AttrDelivered: true,
	AttrOutcome: true, AttrSource: true, AttrBreakerFrom: true, AttrBreakerTo: true, AttrBreakerReason: true,
	AttrDuplicate: true, AttrDuplicateOf: true,
}

// attrLiteral finds herald attribute keys spelled out in Go source instead
// of taken from this package.
var attrLiteral = regexp.MustCompile(`attribute\.(?:String|Int|Int64|Bool|Float64|StringSlice|Key)\(\s*"(herald\.[A-Za-z0-9_.]+)"`)

// TestAttributeKeysAreShared checks that every herald.* span attribute the
// code sets is one declared here, so that a Jaeger search by one name finds
// every span: a package that spells a new or different key fails this test
// until the key is added to attrs.go.
func TestAttributeKeysAreShared(t *testing.T) {
	var found int
	err := filepath.WalkDir("../..", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != "../.." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "gen" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range attrLiteral.FindAllStringSubmatch(string(src), -1) {
			found++
			if !known[attribute.Key(m[1])] {
				t.Errorf("%s sets span attribute %q, which internal/telemetry/attrs.go does not declare", path, m[1])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d herald.* attribute literals checked", found)
}

// TestAttributeKeyNames checks the keys follow OpenTelemetry's naming: a
// herald namespace, lower case, dots between namespaces, underscores
// within words. (A duplicate key would not compile in known.)
func TestAttributeKeyNames(t *testing.T) {
	valid := regexp.MustCompile(`^herald(\.[a-z][a-z0-9_]*)+$`)
	for k := range known {
		if !valid.MatchString(string(k)) {
			t.Errorf("attribute key %q does not match %s", k, valid)
		}
	}
}
