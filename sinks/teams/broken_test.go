package teams

import (
	"net/http"
	"testing"

	"github.com/herald-notify/herald/sinks"
)

// TestBrokenAnswers: the answers that mean no notification can reach Teams
// through the sink count against its breaker (sinks.IsBroken); one that
// refuses a single card does not.
func TestBrokenAnswers(t *testing.T) {
	s := &Sink{}
	for code, want := range map[int]bool{
		http.StatusBadRequest:            false,
		http.StatusRequestEntityTooLarge: false,
		http.StatusUnauthorized:          true,
		http.StatusForbidden:             true,
		http.StatusNotFound:              true,
		http.StatusConflict:              true,
		http.StatusServiceUnavailable:    false,
	} {
		err := s.classify(&http.Response{StatusCode: code, Header: http.Header{}}, nil)
		if got := sinks.IsBroken(err); got != want {
			t.Errorf("HTTP %d: IsBroken = %v, want %v (%v)", code, got, want, err)
		}
	}
}
