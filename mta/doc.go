// Package mta is Drover's SMTP surface towards its clients and the
// mail that comes back: the submission listeners that take mail from
// applications, the inbound listener that takes asynchronous bounces and
// feedback reports, the DSN notifier, and the consumers of the event
// stream: the Prometheus metrics and the JSON-lines mail log. Delivery is
// elsewhere: mta/courier plans and delivers over mta/smtpclient, with
// mta/resolve (MX, routes), mta/mtasts and mta/dkim (signing, used here
// through the Signer interface). Besides the mail log, the package keeps
// nothing on disk; it stores through the Enqueuer interface (the spool).
//
// # Submission
//
// Submission runs one go-smtp server per Listener: "plain", "starttls"
// (STARTTLS offered) or "tls" (implicit TLS). SMTPUTF8 and DSN (RFC 3461:
// NOTIFY, ORCPT, RET, ENVID) are offered and recorded with the message.
//
//   - AUTH PLAIN and LOGIN map a login to a Sender (bcrypt password hash).
//     AUTH is offered only inside TLS or on a loopback listener, and is
//     refused (538 5.7.11) to a client that is neither in TLS nor on a
//     loopback address. A wrong login or password gets 535 5.7.8, after
//     the same bcrypt work for an unknown login as for a known one; an
//     authorization identity other than the login gets 535 too. When no
//     sender has a login and a password hash, AUTH is not offered at all
//     (the session is not a go-smtp AuthSession).
//   - Password guessing (AuthLimits): every failed login is logged (client
//     address, login tried, mechanism, listener) and counted. The
//     session's third failure (MaxFailuresPerSession) gets 421 4.7.0 and
//     the connection is closed. Per client address (an IPv6 one by its
//     /64), over all sessions and listeners, failures are counted for a
//     window from the first: after SlowAfter (5 in 10 minutes) the reply
//     to each further AUTH waits 1 s, doubling per failure up to 8 s,
//     successes included; after LockoutAfter (10) the address's AUTH gets
//     454 4.7.0 for Lockout (15 minutes), without a password check. A
//     successful login clears the address's count. At most MaxAddresses
//     addresses are tracked; expired ones are swept, and when full the one
//     whose last failure is oldest goes (locked-out ones last).
//   - No relay for strangers: MAIL needs an authenticated sender, or a
//     client on a loopback address at a listener with a LoopbackSender;
//     anyone else gets 530 5.7.0. A sender may use only the envelope and
//     From domains it owns (FromDomains, "*" for any): 550 5.7.1
//     otherwise. The null return path is allowed.
//   - Limits: a SIZE parameter or a message over MaxMessageSize gets
//     552 5.3.4, a line over MaxLineLength 554 5.6.0, a recipient past
//     MaxRecipients 452 4.5.3 (the earlier ones stay accepted; the
//     session counts them, not go-smtp, so that the refusal is logged;
//     EHLO advertises LIMITS RCPTMAX);
//     ReadTimeout and WriteTimeout bound each read from and write to the
//     client.
//   - Paths: MAIL FROM and RCPT TO are checked by mta/address against
//     RFC 5321 (and RFC 6531 when MAIL carried SMTPUTF8). A bad sender
//     gets 553 5.1.7, a bad recipient 553 5.1.3, a non-ASCII address
//     without SMTPUTF8 553 5.6.7; the reply quotes the path as the client
//     gave it (control characters as '?') and says what is wrong. The
//     return path and recipients are stored in the canonical form
//     (quoted local parts stay quoted, domains in lower case), and the
//     envelope domain check is made on the parsed domain, case-
//     insensitively, in its U-label and A-label forms.
//   - Stream and list: a message's stream (marketing, transactional, ...)
//     and list are named by the MAIL parameters X-DROVER-STREAM= and
//     X-DROVER-LIST=, so that RCPT knows them, or by the header fields
//     X-Drover-Stream and X-Drover-List, which come only with DATA. A
//     value is 1 to 64 ASCII letters, digits, '-', '.' and '_' (a stream
//     is taken in lower case): a bad parameter gets 501 5.5.4, a bad
//     field 550 5.6.0 (an empty field names nothing), each saying what
//     is wrong. RCPT checks with MAIL's values, else the sender's
//     default stream (Sender.Stream, "" being "marketing") and no list.
//     The message's stream and list are the header's, else MAIL's, else
//     the sender's default stream and no list; they are recorded in
//     queue.Message. A field and a parameter that disagree, or two
//     fields that do, get 550 5.6.0 naming both values. EHLO advertises
//     nothing for the parameters.
//   - Suppression (SubmissionConfig.Policy; nil checks nothing): RCPT
//     asks policy.Checker about the canonical address, for the sender,
//     stream and list above. A suppressed recipient gets 550 5.7.1 with
//     the Decision's Text ("Recipient unsubscribed from list
//     spring-news") and a rejected event whose reason, scope, source,
//     stream and list name the entry and the check; unless the Decision
//     says Drop: then RCPT gets 250 and the recipient is taken out at
//     DATA. A store error gets 451 4.3.0. When the header names another
//     stream or list than RCPT checked with, DATA checks every recipient
//     RCPT let through again with the header's (a store error: 451
//     4.3.0); a recipient refused or dropped at RCPT stays so. Every
//     recipient suppressed at DATA, and every Drop one from RCPT, is
//     taken out of the message with a suppressed event (sender,
//     recipient, stream, campaign, list, the entry's reason, scope and
//     source, the client), emitted when DATA gets its 250 or 550 (not
//     when it fails for a time, so a retry does not count them twice);
//     nothing suppressed is ever queued. When no recipient is left, DATA
//     gets 550 5.7.1 with the Text of the first one suppressed without
//     Drop (a rejected event as at RCPT), or else 250 "OK: nothing
//     queued, every recipient is suppressed", and nothing is queued.
//   - The message is CRLF-normalised (a bare CR or LF becomes CRLF, so no
//     command can be smuggled to the next hop). The control headers
//     X-Drover-Stream, X-Drover-Campaign, X-Drover-List and X-Drover-Flow
//     are recorded with the message and removed, as is any other
//     X-Drover- field. Exactly one From field is required, every address
//     in it of an owned domain (550 5.6.0 / 5.7.1). Date and Message-ID
//     are added when missing and a Received field goes on top (RFC 5321
//     4.4: the HELO name, the client's address, "with" ESMTP, ESMTPS,
//     ESMTPA or ESMTPSA, "id" and the queue id, which the session takes
//     from Enqueuer.NewID before Enqueue, and "for <addr>" when there is
//     one recipient only, so as not to disclose the others). Each
//     message queued is signed, for the domain of the first From
//     address, when the Signer has a key for it; a signing failure gets
//     451 4.3.0.
//   - List-Unsubscribe (RFC 2369, RFC 8058; SubmissionConfig.Links, nil
//     adds none): a marketing message (stream "marketing") of a sender
//     whose Sender.ListUnsubscribe is "add" (or ""), or "keep" when the
//     message has no List-Unsubscribe of its own, gets Drover's
//     List-Unsubscribe ("<https URL>," folded before "<mailto URL>",
//     which comes when the sender has a mailto domain) and
//     List-Unsubscribe-Post ("List-Unsubscribe=One-Click"), in place of
//     the application's fields of those names. Their token
//     (policy.Links.Unsubscribe) names the sender, the list, the
//     recipient and the queue id, so such a message is queued as one
//     copy per recipient, each with its own Received field and token,
//     each signed (mta/dkim signs both fields). No line of these fields
//     exceeds 998 bytes nor holds a bare CR or LF: a link that would
//     gets 451 4.3.0 (NewSubmission refuses a base URL that is not
//     https or holds what a field cannot). "keep" with a
//     List-Unsubscribe of the message's own, "off", and every other
//     stream queue the message once, its fields as they are.
//   - The reply 250 ("OK: queued as ID", or "OK: queued as N messages,
//     one per recipient: ID ..." for copies) is sent only after
//     Enqueuer.EnqueueAll has returned, which for the spool means after
//     its one batch of every message was committed with fsync; a
//     storage error gets 451 4.3.0 (452 4.3.1 when storage is full) and
//     nothing is acknowledged, nor stored. Copies are made and signed 8
//     at a time, then queued together, all or none, so the client's retry
//     after a failure delivers nothing twice. A received event follows each
//     message queued, copies included, with the client's IP address,
//     HELO name, AUTH login, TLS version ("TLS1.3"), the Message-ID and
//     the recipients' addresses.
//   - Every refusal of MAIL, RCPT or DATA that the session makes is a
//     rejected event (Postfix's "NOQUEUE: reject"): the client's IP
//     address, HELO name, login and account, the sender, the recipient
//     (RCPT), the command and the reply; never a password or the message
//     (client strings are cut to 256 bytes). Refusals go-smtp makes by
//     itself (a malformed command, a command out of sequence) are not.
//     The inbound listener logs its refusals the same way.
//
// The header is cut into fields by a small parser of its own (header.go)
// rather than net/mail, which keeps neither the fields' order nor their
// bytes: fields are removed here and the rest must reach the signer and
// the recipient byte for byte. It and the CRLF normalisation are fuzzed
// (FuzzSplitHeader, FuzzNormalizeCRLF). SelfSignedCertificate gives TLS
// listeners a throw-away certificate when none is configured.
//
// RCPT does not consult consent or the sending score here yet.
//
// # Inbound
//
// Inbound is one listener that accepts mail only for VERP return paths
// of its bounce domains (bounces+TOKEN@domain, with a token that
// bounce.VERP authenticates), for fbl@ each bounce domain, for the
// configured feedback addresses and, when InboundConfig has Tokens and
// an Unsubscriber, for the unsubscribe mailbox unsubscribe@ each bounce
// domain (policy.MailtoLocal); a recipient that is no RFC 5321 path gets
// 553 5.1.3, every other recipient 550 5.1.1, so it relays nothing. Each message is parsed by the bounce package
// (DSN, non-standard bounce, ARF, auto-reply) and mapped back to the
// message, recipient and sender through the token (a feedback report to
// fbl@, through the first VERP return path of a bounce domain it quotes:
// ARF's Original-Mail-From, the returned message's Return-Path; else
// through the report's recipient and Message-ID), and becomes a bounced or a
// complained event like a failure during delivery; auto-replies and
// delivery reports are logged only. An unreadable report is accepted and
// logged (refusing it would bounce a bounce). It never answers mail with
// mail.
//
// Mail to the unsubscribe mailbox (the mailto target of List-Unsubscribe)
// carries a link token in its Subject (RFC 2047 decoded), "unsubscribe
// TOKEN" or TOKEN alone; else its first non-empty text line (of the first
// text/plain part, transfer encoding undone) does. The token is opened
// (policy.Tokens.Open) and the recipient it names unsubscribed
// (policy.Unsubscriber, source "mailto"), then logged. A message without
// a token that opens (forged, altered, expired, of a key gone) is
// accepted, 250, and logged at Info with the reason; a store error gets
// 451 4.3.0 so that the sender's MTA tries again. The message is read
// with the standard library's MIME packages; FuzzMailtoTokens fuzzes
// the search for the token.
//
// # DSN notifier
//
// DSNNotifier is the spool's OnFailure and OnDelay hook: it queues an
// RFC 3464 report (bounce.NewDSN) to the return path for recipients that
// failed for good, and delay notices where NOTIFY asks for DELAY (or, for
// a recipient without NOTIFY, where the sender wants them). The report is
// enqueued before the spool drops the failed recipients, and its received
// event (OnEvent) names its kind ("dsn": "failure" or "delay") and the
// queue id of the message it reports on ("original_id"). No report goes
// to the null sender, to MAILER-DAEMON, postmaster or a VERP address, to
// Drover's own bounce domains, to a sender that does not want DSNs, or
// for a recipient whose NOTIFY excludes FAILURE.
//
// # Metrics
//
// Metrics registers on an injected registry, never the global one:
// submission sessions open and opened (drover_smtp_sessions,
// drover_smtp_sessions_total), failed logins and AUTH refused to a
// locked-out address by listener (drover_smtp_auth_failures_total,
// drover_smtp_auth_refusals_total), addresses locked out
// (drover_smtp_auth_lockouts_total), messages and bytes received
// (drover_messages_received_total, drover_received_bytes_total; a
// message queued as copies counts once per copy),
// recipients by delivery result (drover_deliveries_total{result}),
// feedback reports by type (drover_complaints_total{type}), refusals of
// MAIL, RCPT and DATA by command and reply code
// (drover_smtp_rejections_total{command,code}), bounces by class (hard,
// soft, none for an operator's) and reason (the classifier's vocabulary,
// operator, or other) (drover_bounces_total{class,reason}), the notices
// the DSN notifier queued (drover_dsn_generated_total{kind}: failure,
// delay; not counted as messages received), RCPT and DATA refused
// because the recipient is suppressed, by the entry's reason
// (drover_policy_refusals_total{reason}, from the rejected events that
// name a reason), recipients taken out of messages because they are
// suppressed, dropped or refused at DATA
// (drover_suppressed_total{reason}, from the suppressed events; both
// have a label for each of policy.Reasons from the start, and other for
// a reason outside them), the time from
// acceptance to delivery (drover_delivery_latency_seconds), and, read
// from the spool at each scrape, recipients by state, messages, the
// oldest message's age (drover_queue_*) and every site's shaping state
// (drover_site_*). Observe counts one event; the wiring feeds it the
// event stream.
//
// # Mail log
//
// MailLog writes every event as one JSON line (snake_case keys) to a file,
// standard output, or nowhere ("off"). The file is rotated before the
// first line of each UTC day, to PATH.YYYY-MM-DD, and the rotated files
// older than the retention are removed then (logfile.go). Write never blocks: a goroutine of
// its own encodes and writes, flushing every second; events are dropped
// and counted when the disk falls a whole buffer behind, and failed
// writes are counted in drover_maillog_write_errors_total and logged
// (throttled). Fanout hands each event to the metrics and the mail log.
//
// # Drain and health
//
// Shutdown, on either listener, closes the listening sockets at once,
// refuses new transactions (MAIL gets 421 4.3.2), lets every message whose
// DATA has begun get its reply (until the context ends) and then closes
// the remaining sessions, idle ones included; Close closes everything at
// once instead. Healthy is nil while every listener accepts connections,
// and says which one stopped, or that the server has not started or is
// shutting down.
package mta
