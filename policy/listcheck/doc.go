// Package listcheck is the quality check of a mailing list before its
// first campaign: it reads the list as CSV and writes the rows that pass
// (the clean file, same columns) and what is wrong with the others (the
// report, one CSV line per finding), with a summary of the counts.
//
// It is the list-cleaning tool behind `drover list check`, used by the
// CLI and not on the mail path (nothing on the mail path imports it).
// That is why, unlike the rest of policy, it imports two packages of mta:
// drover/mta/address, so that a list is judged by the very parser
// (RFC 5321, and RFC 6531 for internationalised addresses) that will take
// its addresses at RCPT, and drover/mta/resolve, whose errors tell a
// domain that does not exist or takes no mail from one whose DNS failed
// for now. DNS itself is an injected Resolver, which *resolve.Resolver
// satisfies; the suppression list is an injected hook.
//
// Contract:
//
//   - Input: CSV (RFC 4180: quoted fields, CRLF or LF, a UTF-8 byte order
//     mark at the start is dropped), with or without a header row. The
//     first row is a header when one of its cells is an address column
//     name (email, e-mail, address, email address, e-mail address,
//     email_address; any case), or when none of its cells holds an @. The
//     address column is the first so named, else the first column. Rows
//     may have any number of fields. A line that is not CSV (a bare or
//     stray quote) is a finding of its own (malformed_line, with its line
//     number) and counts as invalid syntax; the check goes on with the
//     next line. An unterminated quote takes the rest of the file as one
//     field, as CSV's rules say. An input without any row (empty, blank
//     lines, a byte order mark alone) is ErrEmpty; a header alone is a
//     summary of 0 rows.
//   - Each row is checked once, in this order; a row that fails one of the
//     first three is not checked further:
//     malformed_line; invalid_syntax (address.Parse with utf8 on, of the
//     field with surrounding white space trimmed; the detail is the
//     parser's reason); duplicate (policy.Normalize of the canonical form
//     equal to that of an earlier row: the first occurrence is kept);
//     then the domain in DNS: no_mx (the domain does not exist, or has
//     neither MX nor address records, or none of its MX hosts has an
//     address), null_mx (RFC 7505), unverified (a temporary DNS failure
//     or a lookup that timed out: kept, but flagged); typo (Suggest: the
//     suggestion is the address with the big mailbox domain it looks
//     like); role_account (Role); suppressed (the Suppressed hook).
//     Address literals (user@[192.0.2.1]) are not looked up.
//   - DNS: each distinct domain (in its A-label form) is looked up once
//     per run, by at most Options.Concurrency lookups at once, each bounded
//     by Options.LookupTimeout; each MX host once too. Resolver.MX answers
//     as *resolve.Resolver's does: the implicit MX of a domain with only
//     address records is the domain itself, and a failure is recognised by
//     errors.Is with resolve's sentinels (ErrNoSuchDomain, ErrNoAddress,
//     ErrNullMX, ErrInvalidName: permanent); any other error is temporary.
//   - Suppression: the hook is asked about the canonical forms of the rows
//     that parse and are no duplicates, at most Options.SuppressionBatch
//     addresses a call; an address is suppressed when the answer maps it,
//     or its policy.Normalize form, to true. An error of the hook ends the
//     check with that error.
//   - Output: the clean file has the header (if any) and the kept rows,
//     in input order, fields unchanged (quoted where CSV needs it), with
//     the input's byte order mark and line ending (CRLF when the first
//     line ends so). A row is kept unless it is malformed, invalid, a
//     duplicate, no_mx, null_mx or suppressed, a typo (unless
//     Options.KeepTypos) or a role account (unless Options.KeepRoles).
//     The report is CSV (UTF-8, LF) with the header
//     line,address,problem,detail,suggestion and the findings in input
//     order; line is the line of the file where the row starts.
//   - Summary: Rows (rows after the header), Valid (rows without a
//     finding), one count per problem (rows with that finding; a row may
//     count under several), Kept (rows written to the clean file).
//   - Memory: the file is streamed in chunks (at most a few tens of
//     thousands of rows are in memory at once); what stays is a 16-byte
//     hash and a line number per distinct address (for duplicates) and a
//     small entry per distinct domain. With DNS answered at once, a
//     million rows take about two seconds and at most 60 MB of live heap
//     (BenchmarkCheckMillion).
//   - Progress: Options.Progress is called from its own goroutine, never
//     twice within Options.ProgressInterval, and never after Check returns.
//   - Check returns once every goroutine it started has ended; canceling
//     its context ends it with the context's error.
package listcheck
