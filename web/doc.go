// Package web is Drover's public web listener: the pages a recipient
// reaches from a link in a message: the one-click unsubscribe (RFC
// 8058), the manage-subscription page (manage.go), the sign-up form
// endpoint and the double opt-in confirmation (signup.go). It is
// its own package, beside httpapi, because it is the recipient-facing
// surface: it answers anyone on the internet, authenticated only by the
// sealed token in the link, while the admin API stays on its loopback
// listener behind its bearer token. No handler of this package reaches
// the admin API, and no handler of httpapi is mounted here.
//
//	GET  /u/TOKEN   a page naming the list and the sender, with one
//	                button that POSTs the form below to the same URL;
//	                it changes nothing (link scanners and mail
//	                clients prefetch links)
//	POST /u/TOKEN   body List-Unsubscribe=One-Click (RFC 8058, as
//	                application/x-www-form-urlencoded or multipart/form-data;
//	                the exact bare body is also taken under any other or
//	                no Content-Type): unsubscribe, answer 200 text/plain
//	                "You are unsubscribed."; with the page's field
//	                confirm=1: unsubscribe, answer 200 with a page naming
//	                the list and the sender
//	GET  /m/TOKEN   the manage-subscription page (with Config.Manager):
//	                what is held about the address with the sender, and
//	                a form per change (name, unsubscribe from a list or
//	                from all, withdraw a consent); GET /m/TOKEN/data.json
//	                downloads it as JSON
//	POST /m/TOKEN   one change of that page, then 303 to the page
//	GET  /healthz   200 "ok"
//
// TOKEN is policy.Tokens' sealed token (policy.Links makes the URLs). When
// Config.BaseURL has a path (https://example.com/mail), requests under that
// path are served as well as bare ones, so a reverse proxy may forward the
// public path as it is or strip it.
//
// The security contract:
//
//   - A GET or HEAD never unsubscribes. Only a POST whose token opens and
//     whose body is the RFC 8058 one-click body or the page's confirm form
//     calls the Unsubscriber, once per request, with source "one-click"
//     (the RFC 8058 POST, as mailbox providers send it) or "page" (the
//     confirm button).
//   - The 200 of a POST is written only after the Unsubscriber returned
//     nil, that is once the suppression is committed. A store error is a
//     503 page (with Retry-After) that claims nothing.
//   - A token that is malformed, truncated, altered, forged or sealed with
//     a key no longer in the ring is refused with 400, an expired one with
//     410, each with a page saying the link is not valid or has expired;
//     nothing changes. Replaying a valid token is harmless: unsubscribing
//     is idempotent and answers 200 again.
//   - A body over Config.MaxBody (4 KiB by default) is refused with 413
//     before anything is decided; any other POST body is 400; any other
//     method 405 with Allow; any other path a 404 page. Nothing changes on
//     any of them.
//   - The manage page changes nothing on a GET, opens only tokens made
//     for it (policy.ManageMarker), and takes a POST only with the
//     page's csrf field (an HMAC of the token under a key derived from
//     the ring's sealing key) and, when the browser sends them, an Origin
//     that is the base URL's (Origin "null", what browsers send under
//     Referrer-Policy: no-referrer, is left to the csrf field) and a
//     Sec-Fetch-Site of same-origin: anything else is 403 and changes
//     nothing. A name with a control character (CR, LF, ...) or over 100
//     characters is 400 and changes nothing. A change answers 303 only
//     once it is committed.
//   - Pages show the list and the sender's name, and the recipient's
//     address only masked (j***@example.com); the manage page shows it
//     in full, as whoever opens it holds the mailbox. Every dynamic text goes
//     through html/template. No page runs JavaScript, loads anything from
//     elsewhere or can be framed.
//   - Every response carries Content-Security-Policy: default-src 'none';
//     style-src 'unsafe-inline'; form-action 'self'; frame-ancestors
//     'none', X-Content-Type-Options: nosniff, Referrer-Policy: no-referrer
//     (the token is in the URL) and Cache-Control: no-store. No cookie is
//     ever set or read; RFC 8058's POST comes without any.
//   - Logs name the sender, the list and the queue ID, never the address
//     or the token (a token is as good as the link).
//   - Pages speak the recipient's language (i18n.go): ?lang= in the URL,
//     else the best match of Accept-Language, else English, from message
//     catalogs (English and Simplified Chinese ship; Config.Locales adds
//     languages from files); each links to itself in the others, and
//     says its language in lang= and Content-Language.
//
// The package keeps no state: the token carries what the link names, and
// the Unsubscriber owns the suppression list.
package web
