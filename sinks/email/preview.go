package email

import (
	"context"
	"errors"
	"time"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/sinks"
)

// Preview returns the message Send would write for n and to, dated date,
// without connecting to the SMTP server: the same recipients, Message-ID,
// threading headers, templates and MIME encoding. It is what `herald
// template` prints for an email sink.
func (s *Sink) Preview(ctx context.Context, n *heraldv1.Notification, to sinks.Target, date time.Time) ([]byte, error) {
	if n == nil {
		return nil, sinks.Permanent(errors.New("email: nil notification"))
	}
	m, err := s.compose(ctx, n, to, date)
	if err != nil {
		return nil, err
	}
	return m.msg, nil
}
