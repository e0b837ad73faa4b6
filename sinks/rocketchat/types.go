package rocketchat

// Wire types of the Rocket.Chat REST API and incoming webhooks, with only
// the keys herald sends or reads. Rocket.Chat validates request bodies with
// additionalProperties: false, so every request type lists exactly the keys
// the endpoint accepts, and omits the empty ones.

// Attachment is a Rocket.Chat message attachment (MessageAttachment).
type Attachment struct {
	Color           string   `json:"color,omitempty"`
	Title           string   `json:"title,omitempty"`
	TitleLink       string   `json:"title_link,omitempty"`
	Text            string   `json:"text,omitempty"`
	Fields          []Field  `json:"fields,omitempty"`
	Actions         []Action `json:"actions,omitempty"`
	ButtonAlignment string   `json:"button_alignment,omitempty"`
}

// Field is one short key/value cell of an attachment.
type Field struct {
	Short bool   `json:"short"`
	Title string `json:"title"`
	Value string `json:"value"`
}

// Action is an attachment button that opens a URL.
type Action struct {
	Type            string `json:"type"`
	Text            string `json:"text"`
	URL             string `json:"url"`
	MsgInChatWindow bool   `json:"msg_in_chat_window"`
}

// sendMessageRequest is the body of POST /api/v1/chat.sendMessage.
type sendMessageRequest struct {
	Message outMessage `json:"message"`
}

// outMessage is the message of chat.sendMessage: the client chooses _id.
type outMessage struct {
	ID          string       `json:"_id"`
	RoomID      string       `json:"rid"`
	Msg         string       `json:"msg"`
	ThreadID    string       `json:"tmid,omitempty"`
	Alias       string       `json:"alias,omitempty"`
	Emoji       string       `json:"emoji,omitempty"`
	Avatar      string       `json:"avatar,omitempty"`
	Attachments []Attachment `json:"attachments,omitempty"`
}

// updateRequest is the body of POST /api/v1/chat.update: text only.
type updateRequest struct {
	RoomID string `json:"roomId"`
	MsgID  string `json:"msgId"`
	Text   string `json:"text"`
}

// webhookRequest is the body of POST /hooks/<id>/<token>.
type webhookRequest struct {
	Text        string       `json:"text"`
	Channel     string       `json:"channel,omitempty"`
	Alias       string       `json:"alias,omitempty"`
	Emoji       string       `json:"emoji,omitempty"`
	Avatar      string       `json:"avatar,omitempty"`
	Attachments []Attachment `json:"attachments,omitempty"`
}

// apiResponse is the envelope of every answer: success, and on failure an
// error text and sometimes an error type and details.
type apiResponse struct {
	Success   *bool  `json:"success"`
	Error     any    `json:"error"`
	ErrorType string `json:"errorType"`
	Details   struct {
		TimeToReset float64 `json:"timeToReset"`
	} `json:"details"`
	// Message is set by chat.sendMessage, chat.getMessage, chat.update.
	Message *inMessage `json:"message"`
	// Room is set by rooms.info.
	Room *struct {
		ID string `json:"_id"`
	} `json:"room"`
}

// inMessage is the part of a stored message (IMessage) herald reads.
type inMessage struct {
	ID       string `json:"_id"`
	RoomID   string `json:"rid"`
	ThreadID string `json:"tmid"`
	// Type is set for system messages; "rm" marks a removed message that
	// Rocket.Chat keeps as a placeholder.
	Type string `json:"t"`
}
