// Package testkit holds the helpers that the tests of several Drover
// packages share: a fake clock, certificate makers, a fake MX (an SMTP
// server that records what it is given and answers on cue), in-memory
// connections for servers run inside a testing/synctest bubble, ways to
// wait for an event with a deadline instead of sleeping, and the peer
// programs of interoperability tests (Tool, StartSmtpSink).
//
// It is a folder of its own because a _test.go file cannot be imported by
// another package's tests, and these helpers used to be copied into three
// or four of them. It is imported only by tests: no non-test file of the
// module may import it (TestOnlyTestsImportTestkit checks every one), so
// nothing here ships in the binary. It imports nothing of Drover's, so that
// any package's internal tests can use it without an import cycle.
package testkit
