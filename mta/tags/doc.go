// Package tags puts each recipient's own links into a submitted message.
// Senders write link tags in the text and HTML parts of a message:
//
//	[opt-in: Confirm your subscription]
//	[unsubscribe: Unsubscribe]
//	[manage: Manage your preferences]
//
// and Drover, for each recipient, replaces every tag with that recipient's
// signed link before the message is DKIM-signed. The package imports
// nothing of Drover and stores nothing (no key prefixes); the caller seals
// the tokens (policy.Links) and hands Rewrite a Link that returns the URL
// of a kind.
//
// # Tag syntax
//
// A tag is "[", a kind ("opt-in", "unsubscribe" or "manage", in any ASCII
// case), ":", optional spaces and tabs, TEXT, "]". TEXT is 1 to MaxText
// characters with no "]" and no line break; trailing blanks are not part
// of it. Anything else is text and is left as it is: "[manage:]",
// "[ manage: x]", "[managed: x]", a tag broken over two lines. Tags are
// found in the decoded text of a part, so one split by a quoted-printable
// soft line break is found, and one written as "=5B..." too.
//
// # What a tag becomes
//
//   - In a text/plain part: "TEXT <URL>", TEXT as written.
//   - In a text/html part, in text content: <a href="URL">TEXT</a>. URL is
//     HTML-escaped (& < > ' "); TEXT is HTML source already (it may hold
//     &amp; or &eacute;) and is kept as it is, never escaped twice. A tag
//     whose TEXT holds "<" or ">" is refused: it would run into markup.
//   - In a text/html part, inside a quoted attribute value, as in
//     <a href="[manage: x]" style="...">Preferences</a>: the HTML-escaped
//     URL alone, so senders may style their own links and buttons. A tag
//     that runs past the closing quote is refused.
//   - In a text/html part, anywhere else in markup (an unquoted attribute
//     value, a tag name, a doctype or a processing instruction), in the
//     text of script, style, title, textarea and the other elements whose
//     text is not HTML, or in the text of an <a> element (links do not
//     nest): refused.
//   - In an HTML comment: the comment's content is read as HTML and its
//     tags become what they would outside it, because Outlook renders the
//     content of conditional comments (<!--[if mso]>...<![endif]-->) and
//     the buttons of many templates live there. In an ordinary comment
//     the link is inserted harmlessly.
//
// Nothing is left silently: every tag Has sees is replaced, or Rewrite
// fails with an error (wrapping ErrMessage) that names the part, the tag
// and the reason, so that a message can be refused at submission rather
// than sent with a raw tag.
//
// # Which parts
//
// The message is walked as MIME: multipart/* of any subtype (mixed,
// alternative, related, ...) to a nesting of MaxDepth multiparts; a
// deeper message gets an error from Rewrite and Has reports it, since its
// deeper parts cannot be read. Tags are looked for in text/plain and
// text/html parts that are not attachments (Content-Disposition:
// attachment); a part without a Content-Type is text/plain
// (message/rfc822 in a multipart/digest). Every other part (attachments,
// images, message/rfc822, parts of unknown transfer encoding), and the
// preamble and epilogue of every multipart, is kept byte for byte, and so
// is a text part without a tag. Header fields, of the message and of its
// parts, are never changed; Content-Transfer-Encoding in particular stays.
//
// A part with a tag is decoded from its Content-Transfer-Encoding, its
// tags are replaced, and it is encoded again in the same encoding:
//
//   - 7bit, 8bit and binary: the tags are replaced in place and every
//     other byte is kept. A line that would grow past 998 bytes is an
//     error, not a broken message.
//   - quoted-printable: the whole part is encoded again, with lines of at
//     most 76 characters; what it decodes to is what it decoded to before,
//     but for the tags.
//   - base64: the whole part is encoded again, in lines of 76 characters.
//
// Tags are refused (an error naming the charset) in a part whose charset
// is not UTF-8 or US-ASCII (no charset means US-ASCII): a tag's bytes are
// not what they seem in Shift_JIS or UTF-16, and Drover would corrupt the
// text. Tags inside a multipart/signed are refused too, since rewriting
// would break the signature, and so are tags in a part whose header, or
// that of a multipart around it, has Content-Type,
// Content-Transfer-Encoding or Content-Disposition twice: readers differ
// on which counts, so Drover cannot know what they show.
//
// Rewrite takes the message as Drover stores it: CRLF line ends only. It
// refuses one with a bare CR or LF when there is a tag to replace, and
// every line it writes ends in CRLF and is at most 998 bytes long; lines
// it does not touch are kept as they came. A message without a tag is
// returned as it is, the same slice.
//
// # Why by hand
//
// No Go library rewrites a MIME part in place while keeping every other
// byte of the message: mime/multipart and net/mail read, and writers
// build new messages, re-folding headers and changing boundaries, line
// ends and encodings. Drover needs every other byte kept: the sender's
// formatting and attachments stay what the sender wrote, and what DKIM
// signs after the rewrite, and the recipient's server verifies, is the
// sender's message but for the links. The walk is therefore hand-written;
// HTML is tokenized by golang.org/x/net/html, whose raw tokens partition
// the source, so the bytes between tags are copied untouched. All of it is
// fuzzed: FuzzRewrite (no message panics; one without a tag comes back
// unchanged; a rewritten one keeps its header, ends every line in CRLF
// and has no line over 998 bytes), FuzzRewritePart (only the tags of a
// part change, into the forms above), FuzzAttributes (attribute values
// are where the tokenizer finds them) and FuzzEncodings (what is encoded
// decodes to what it was).
package tags
