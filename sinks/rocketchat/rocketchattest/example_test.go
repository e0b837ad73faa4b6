package rocketchattest_test

import (
	"context"
	"fmt"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/secret"
	"github.com/herald-notify/herald/sinks"
	"github.com/herald-notify/herald/sinks/rocketchat"
	"github.com/herald-notify/herald/sinks/rocketchat/rocketchattest"
)

// A REST sink pointed at the fake, then what the room received.
func Example() {
	srv := rocketchattest.NewServer(rocketchattest.WithRooms("alerts-critical"))
	defer srv.Close()

	s, err := rocketchat.New("rocketchat", rocketchat.Config{
		URL: srv.URL, UserID: srv.UserID(), Token: secret.String(srv.Token()),
	}, sinks.Deps{})
	if err != nil {
		panic(err)
	}
	n := &heraldv1.Notification{
		Id: "n1", Title: "DiskFull", Severity: heraldv1.Severity_SEVERITY_CRITICAL,
		Status: heraldv1.Status_STATUS_FIRING,
	}
	r, err := s.Send(context.Background(), n, sinks.Target{Channel: "#alerts-critical", Attempt: 1})
	if err != nil {
		panic(err)
	}
	for _, m := range srv.Messages("alerts-critical") {
		fmt.Println(m.ID == r.Parent.GetMessageId(), m.Text)
	}
	// Output: true 🔴 *FIRING* · critical · *DiskFull*
}
