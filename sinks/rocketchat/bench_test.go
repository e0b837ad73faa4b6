package rocketchat

import (
	"strconv"
	"testing"

	"github.com/herald-notify/herald/internal/secret"

	"github.com/herald-notify/herald/sinks"
	"github.com/herald-notify/herald/sinks/rocketchat/rocketchattest"
)

// go test -run '^$' -bench . -benchmem ./sinks/rocketchat/
func BenchmarkRender(b *testing.B) {
	r := &renderer{max: DefaultMaxMessageSize, mentions: map[string]string{"critical": "@here"}}
	for _, c := range []struct {
		name string
		n    func() rendered
	}{
		{"firing3", func() rendered { m, _ := r.render(defaultTemplates, firing(), renderOpts{mention: true}); return m }},
		{"many300", func() rendered { m, _ := r.render(defaultTemplates, many(300), renderOpts{mention: true}); return m }},
		{"huge", func() rendered { m, _ := r.render(defaultTemplates, huge(), renderOpts{}); return m }},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				c.n()
			}
		})
	}
}

// BenchmarkSendREST measures one Send (post of a new parent) against the
// in-process fake, request encoding and answer decoding included.
func BenchmarkSendREST(b *testing.B) {
	srv := rocketchattest.NewUnstarted(rocketchattest.WithRooms("alerts"))
	s, err := New("rc", Config{URL: fakeURL, UserID: srv.UserID(), Token: secret.String(srv.Token())}, sinks.Deps{Transport: srv.Transport()})
	if err != nil {
		b.Fatal(err)
	}
	n := firing()
	to := sinks.Target{Channel: "#alerts", Attempt: 1}
	i := 0
	for b.Loop() {
		i++
		n.Id = strconv.Itoa(i)
		if _, err := s.Send(b.Context(), n, to); err != nil {
			b.Fatal(err)
		}
	}
}
