// check.js validates Adaptive Cards with Microsoft's own parser, the npm
// package adaptivecards (the renderer Teams' web client is built on). It
// reads a JSON array of Workflows webhook request bodies on standard input
// and writes a JSON array with, for each, the list of problems found.
// ("node check.js markup" instead reads a JSON array of texts and writes
// the shape of each one's Markdown: see markup below.) The problems:
//
//   - the envelope: type "message", one attachment of contentType
//     "application/vnd.microsoft.card.adaptive" with contentUrl null, an
//     AdaptiveCard as its content (learn.microsoft.com/en-us/connectors/teams,
//     "Request Body Schema");
//   - every event the parser raises while parsing the card for the version
//     it declares (invalid property values, unknown element or action
//     types, properties newer than the card's version);
//   - every failure of the card's own validation (validateProperties);
//   - every property the parser drops when it writes the card back out,
//     which is how it treats a misspelled or unknown property; the Teams
//     extension "msteams" and "$schema" are allowed;
//   - every property the card's schema does not define (the parser keeps
//     those as they are, so a misspelling would pass the check above).
//
// The package needs no DOM to parse and validate: it is loaded from its
// bundled dist/ build, as lib/ is ES modules without file extensions that
// node cannot resolve.
"use strict";
const AC = require("adaptivecards/dist/adaptivecards.js");

function problemsOf(body) {
  const out = [];
  if (body === null || typeof body !== "object") return ["the body is not an object"];
  if (body.type !== "message") out.push(`type is ${JSON.stringify(body.type)}, not "message"`);
  if (!Array.isArray(body.attachments) || body.attachments.length !== 1) {
    out.push("attachments is not an array of one attachment");
    return out;
  }
  const att = body.attachments[0];
  if (att.contentType !== "application/vnd.microsoft.card.adaptive") out.push(`contentType is ${JSON.stringify(att.contentType)}`);
  if (!("contentUrl" in att) || att.contentUrl !== null) out.push("contentUrl is not null");
  const json = att.content;
  if (!json || json.type !== "AdaptiveCard") {
    out.push("content is not an AdaptiveCard");
    return out;
  }
  const version = AC.Version.parse(json.version, new AC.SerializationContext());
  if (!version || !version.isValid) {
    out.push(`version ${JSON.stringify(json.version)} is not valid`);
    return out;
  }
  const card = new AC.AdaptiveCard();
  const ctx = new AC.SerializationContext(version);
  card.parse(json, ctx);
  for (let i = 0; i < ctx.eventCount; i++) {
    const e = ctx.getEventAt(i);
    out.push(`parse: ${AC.ValidationEvent[e.event]}: ${e.message}`);
  }
  const v = card.validateProperties();
  for (const e of v.validationEvents) {
    out.push(`validate: ${AC.ValidationEvent[e.event]}: ${e.message}`);
  }
  const back = card.toJSON(new AC.SerializationContext(version));
  dropped(json, back, "content", out);
  unknown(json, card, "content", out);
  return out;
}

// unknown lists the properties of json that the schema of obj, the object
// the parser made of it, does not define: the parser keeps them as they
// are, so a misspelled property would otherwise pass.
function unknown(json, obj, path, out) {
  if (!obj || typeof obj.getSchema !== "function") return;
  // The collections are parsed by hand, outside the schema.
  const known = new Set(["type", "body", "actions", "items"]);
  const schema = obj.getSchema();
  for (let i = 0; i < schema.getCount(); i++) known.add(schema.getItemAt(i).name);
  for (const k of Object.keys(json)) {
    if (path === "content" && (k === "$schema" || k === "msteams")) continue;
    if (!known.has(k)) out.push(`${path}.${k}: not a property of ${json.type || "this object"}`);
  }
  const kids = (key, get) => {
    if (Array.isArray(json[key])) json[key].forEach((j, i) => unknown(j, get(i), `${path}.${key}[${i}]`, out));
  };
  if (obj instanceof AC.AdaptiveCard) {
    kids("body", (i) => obj.getItemAt(i));
    kids("actions", (i) => obj.getActionAt(i));
  } else if (obj instanceof AC.Container) {
    kids("items", (i) => obj.getItemAt(i));
  } else if (obj instanceof AC.FactSet) {
    kids("facts", (i) => obj.facts[i]);
  }
}

// dropped lists the properties of want that got lost or changed in got.
function dropped(want, got, path, out) {
  if (Array.isArray(want)) {
    if (!Array.isArray(got) || got.length !== want.length) {
      out.push(`${path}: the parser kept ${Array.isArray(got) ? got.length : 0} of ${want.length} items`);
      return;
    }
    want.forEach((w, i) => dropped(w, got[i], `${path}[${i}]`, out));
    return;
  }
  if (want !== null && typeof want === "object") {
    for (const k of Object.keys(want)) {
      if (path === "content" && (k === "$schema" || k === "msteams")) continue;
      if (got === null || typeof got !== "object" || !(k in got)) {
        out.push(`${path}.${k}: dropped by the parser (unknown, invalid or newer than the card's version)`);
        continue;
      }
      dropped(want[k], got[k], `${path}.${k}`, out);
    }
    return;
  }
  // Enum values come back in the parser's own case ("Bolder" as "bolder").
  if (typeof want === "string" && typeof got === "string" ? want.toLowerCase() !== got.toLowerCase() : want !== got) {
    out.push(`${path}: ${JSON.stringify(want)} came back as ${JSON.stringify(got)}`);
  }
}

// markup is the shape of a text's Markdown without its words: the types
// of markdown-it's tokens (CommonMark with HTML, autolinked URLs and
// e-mail addresses, tables and strikethrough, more than any Teams client
// renders), text tokens left out. Two texts with the same markup differ
// only in their words.
let md;
function markup(text) {
  md = md || require("markdown-it")({ html: true, linkify: true });
  const shape = (tokens) =>
    tokens
      .map((t) => {
        if (t.type === "text") return "";
        if (t.type === "inline") return `inline(${shape(t.children)})`;
        return t.markup ? `${t.type}:${t.markup}` : t.type;
      })
      .filter(Boolean)
      .join(" ");
  return shape(md.parse(text, {}));
}

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (c) => (input += c));
process.stdin.on("end", () => {
  if (process.argv[2] === "markup") {
    process.stdout.write(JSON.stringify(JSON.parse(input).map(markup)) + "\n");
    return;
  }
  const bodies = JSON.parse(input);
  const results = bodies.map((b) => {
    try {
      return problemsOf(b);
    } catch (e) {
      return [`the parser threw: ${e && e.stack ? e.stack : e}`];
    }
  });
  process.stdout.write(JSON.stringify(results) + "\n");
});
