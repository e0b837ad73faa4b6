package mattermosttest_test

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/herald-notify/herald/sinks/mattermost/mattermosttest"
)

// A test starts the fake, adds the channels and hooks the code under test
// uses, sends, and reads back what the server accepted.
func Example() {
	srv := mattermosttest.NewServer("bot-token")
	defer srv.Close()
	ch := srv.AddChannel("ops", "alerts")

	// Lose the answer of the next create: the post is made anyway.
	srv.Fail(mattermosttest.Failure{Match: "POST /api/v4/posts", After: true})

	req, _ := http.NewRequest("POST", srv.URL+"/api/v4/posts",
		strings.NewReader(`{"channel_id":"`+ch+`","message":"disk full","pending_post_id":"p1"}`))
	req.Header.Set("Authorization", "Bearer bot-token")
	_, err := http.DefaultClient.Do(req)
	fmt.Println("answer lost:", err != nil)
	fmt.Println("posts:", len(srv.Posts()), srv.Posts()[0].Message)
	// Output:
	// answer lost: true
	// posts: 1 disk full
}
