package rocketchat

import (
	"encoding/json"
	"net/http"
	"strconv"
	"testing"
	"time"

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

// BenchmarkParseAnswer measures decoding Rocket.Chat's answers: a success
// of chat.sendMessage, which echoes the whole posted message, and a refusal.
func BenchmarkParseAnswer(b *testing.B) {
	r := &renderer{max: DefaultMaxMessageSize, mentions: map[string]string{"critical": "@here"}}
	msg, _ := r.render(defaultTemplates, firing(), renderOpts{mention: true})
	stored := map[string]any{
		"_id": MessageID("rc", "01JDX0FIRING", roleParent), "rid": "GENERAL", "msg": msg.Text,
		"ts": "2026-11-27T03:04:05.000Z", "_updatedAt": "2026-11-27T03:04:05.000Z",
		"u":         map[string]any{"_id": "botUserId000001", "username": "herald.bot", "name": "herald.bot"},
		"groupable": false, "attachments": msg.Attachments,
	}
	sent, err := json.Marshal(map[string]any{"message": stored, "success": true})
	if err != nil {
		b.Fatal(err)
	}
	refused := []byte(`{"success":false,"error":"Invalid room [error-invalid-room]","errorType":"error-invalid-room"}`)
	now := time.Now()
	for _, c := range []struct {
		name   string
		status int
		body   []byte
	}{
		{"sent", http.StatusOK, sent},
		{"refused", http.StatusBadRequest, refused},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.body)))
			for b.Loop() {
				_, _ = decodeAnswer("chat.sendMessage", c.status, nil, c.body, now, noRedact)
			}
		})
	}
}
