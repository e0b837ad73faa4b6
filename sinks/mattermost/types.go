package mattermost

// Wire types of Mattermost's API v4 and incoming webhooks, with only the
// keys herald sends or reads. Sources: the API reference
// (developers.mattermost.com/api-documentation: CreatePost, PatchPost,
// GetPost, GetPostThread, GetPostsForChannel, GetChannelByNameForTeamName)
// and the server's model package (Post, PostPatch, PostList,
// SlackAttachment, IncomingWebhookRequest, AppError).

// Attachment is a message attachment (model.SlackAttachment), carried in
// a post's props.attachments. Mattermost renders Text, Pretext and field
// values as markdown, Title and field titles as plain text.
type Attachment struct {
	Fallback  string  `json:"fallback,omitempty"`
	Color     string  `json:"color,omitempty"`
	Pretext   string  `json:"pretext,omitempty"`
	Title     string  `json:"title,omitempty"`
	TitleLink string  `json:"title_link,omitempty"`
	Text      string  `json:"text,omitempty"`
	Fields    []Field `json:"fields,omitempty"`
	Footer    string  `json:"footer,omitempty"`
}

// Field is one cell of an attachment's table (model.SlackAttachmentField).
type Field struct {
	Title string `json:"title"`
	Value string `json:"value"`
	Short bool   `json:"short"`
}

// Props are the props herald puts on a post: its attachments, and the id
// that lets a retry find the post (Mattermost does not store
// pending_post_id, so a lookup reads this prop instead).
type Props struct {
	Attachments []Attachment `json:"attachments,omitempty"`
	// HeraldPost is the post's deterministic id, also sent as
	// pending_post_id; see PendingPostID.
	HeraldPost string `json:"herald_post,omitempty"`
	// HeraldNotification is the id of the notification the post is for
	// (for a patched root: the notification shown now).
	HeraldNotification string `json:"herald_notification_id,omitempty"`
}

// createPostRequest is the body of POST /api/v4/posts.
type createPostRequest struct {
	ChannelID     string `json:"channel_id"`
	Message       string `json:"message"`
	RootID        string `json:"root_id,omitempty"`
	PendingPostID string `json:"pending_post_id,omitempty"`
	Props         Props  `json:"props"`
}

// patchPostRequest is the body of PUT /api/v4/posts/{post_id}/patch. The
// server replaces message and props as a whole when they are present.
type patchPostRequest struct {
	Message *string `json:"message,omitempty"`
	Props   *Props  `json:"props,omitempty"`
}

// webhookRequest is the body of POST /hooks/{key}
// (model.IncomingWebhookRequest).
type webhookRequest struct {
	Text        string       `json:"text,omitempty"`
	Channel     string       `json:"channel,omitempty"`
	Username    string       `json:"username,omitempty"`
	IconURL     string       `json:"icon_url,omitempty"`
	IconEmoji   string       `json:"icon_emoji,omitempty"`
	Attachments []Attachment `json:"attachments,omitempty"`
	// Props are copied onto the post, except the keys the server sets.
	Props *Props `json:"props,omitempty"`
}

// post is the part of a stored post (model.Post) herald reads.
type post struct {
	ID        string `json:"id"`
	ChannelID string `json:"channel_id"`
	RootID    string `json:"root_id"`
	UserID    string `json:"user_id"`
	DeleteAt  int64  `json:"delete_at"`
	CreateAt  int64  `json:"create_at"`
	Props     struct {
		HeraldPost         string `json:"herald_post"`
		HeraldNotification string `json:"herald_notification_id"`
	} `json:"props"`
}

// postList is the answer of the thread and channel post listings
// (model.PostList).
type postList struct {
	Order []string         `json:"order"`
	Posts map[string]*post `json:"posts"`
}

// channel is the part of model.Channel herald reads.
type channel struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	DeleteAt int64  `json:"delete_at"`
}

// appError is the body of every API error (model.AppError).
type appError struct {
	ID            string `json:"id"`
	Message       string `json:"message"`
	DetailedError string `json:"detailed_error"`
	RequestID     string `json:"request_id"`
	StatusCode    int    `json:"status_code"`
}
