// Reads one JSON string per line on stdin, a Rocket.Chat message text, and
// writes for each one line on stdout: the AST that Rocket.Chat's own
// message parser makes of it, as JSON, or {"error": "..."}. Every syntax
// the parser has is switched on (colours, ASCII emoticons, KaTeX with both
// delimiters), so that text found inert here is inert under any of
// Rocket.Chat's settings. Run by sinks/rocketchat's tests; see
// mdparser_test.go.
import { createInterface } from 'node:readline';
import { parse } from '@rocket.chat/message-parser';

const options = {
  colors: true,
  emoticons: true,
  katex: { dollarSyntax: true, parenthesisSyntax: true },
};

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  let out;
  try {
    out = parse(JSON.parse(line), options);
  } catch (e) {
    out = { error: String(e && e.message || e) };
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}
