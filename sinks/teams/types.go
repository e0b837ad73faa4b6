package teams

// The request a Workflows webhook takes: a message with one Adaptive Card
// attachment. Documented as the Request Body Schema of the trigger "When a
// Teams webhook request is received" (Microsoft Teams connector reference,
// learn.microsoft.com/en-us/connectors/teams/#microsoft-teams-webhook):
// type must be "message"; each attachment has contentType
// "application/vnd.microsoft.card.adaptive", contentUrl null and the card
// as content. The template "Post to a channel when a webhook request is
// received" posts every attachment as a card of its own.

// ContentType is the attachment type of an Adaptive Card.
const ContentType = "application/vnd.microsoft.card.adaptive"

// SchemaURL is the card's $schema.
const SchemaURL = "http://adaptivecards.io/schemas/adaptive-card.json"

// Message is the body of a request to a Workflows webhook.
type Message struct {
	Type        string       `json:"type"`
	Attachments []Attachment `json:"attachments"`
}

// Attachment carries one card. ContentURL is always null.
type Attachment struct {
	ContentType string  `json:"contentType"`
	ContentURL  *string `json:"contentUrl"`
	Content     Card    `json:"content"`
}

// Card is an Adaptive Card (adaptivecards.io/explorer/AdaptiveCard.html),
// with the Teams extension msteams.width.
type Card struct {
	Schema  string    `json:"$schema"`
	Type    string    `json:"type"`
	Version string    `json:"version"`
	Body    []Element `json:"body"`
	Actions []Action  `json:"actions,omitempty"`
	MSTeams *MSTeams  `json:"msteams,omitempty"`
}

// MSTeams holds Teams' own card properties: width "Full" lets the card
// take the whole width of the channel.
type MSTeams struct {
	Width string `json:"width,omitempty"`
}

// Element is one body element: a TextBlock, a Container or a FactSet. Only
// the fields of its type are set. Every property used exists in Adaptive
// Cards 1.2, the oldest version the sink sends.
type Element struct {
	Type string `json:"type"`

	// TextBlock (adaptivecards.io/explorer/TextBlock.html). Text takes
	// Teams' subset of Markdown.
	Text     string `json:"text,omitempty"`
	Wrap     bool   `json:"wrap,omitempty"`
	Weight   string `json:"weight,omitempty"`
	Size     string `json:"size,omitempty"`
	Color    string `json:"color,omitempty"`
	IsSubtle bool   `json:"isSubtle,omitempty"`
	MaxLines int    `json:"maxLines,omitempty"`

	// Container (adaptivecards.io/explorer/Container.html).
	Style string    `json:"style,omitempty"`
	Bleed bool      `json:"bleed,omitempty"`
	Items []Element `json:"items,omitempty"`

	// FactSet (adaptivecards.io/explorer/FactSet.html).
	Facts []Fact `json:"facts,omitempty"`

	// Any element.
	Spacing   string `json:"spacing,omitempty"`
	Separator bool   `json:"separator,omitempty"`
}

// Fact is one name and value of a FactSet; both take Markdown.
type Fact struct {
	Title string `json:"title"`
	Value string `json:"value"`
}

// Action is a button; the sink only sends Action.OpenUrl
// (adaptivecards.io/explorer/Action.OpenUrl.html) to http(s) URLs.
type Action struct {
	Type  string `json:"type"`
	Title string `json:"title"`
	URL   string `json:"url"`
}
