package bounce_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"drover/bounce"
	"drover/mta/resolve/dnstest"
	"drover/testkit"
)

// TestRealMTABounces has three real MTAs (Postfix, Exim, OpenSMTPD, from
// Debian bookworm) fail to deliver five messages each, for the reasons a
// sender meets most, and classifies the bounces they send back: what
// Drover makes of the bounces of the MTAs its users send through or hear
// from.
//
// Each MTA runs as a private instance on loopback, in a private mount
// namespace whose /etc/resolv.conf points at an in-process DNS server on
// port 53 of 127.0.9.53. It relays the recipients' domains to fake MXes
// (or to a closed port, or to DNS, which knows none of them) and the
// senders' domain, sender.test, to a sink MX, which receives the bounces.
// Needs root (mount namespaces, port 53, the MTAs' privilege separation)
// and the peers .ci/peers installs; it skips without them, and fails
// under CI.
func TestRealMTABounces(t *testing.T) {
	if os.Geteuid() != 0 {
		needPeer(t, "running as root")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		needPeer(t, "unshare (util-linux)")
	}
	resolvConf := filepath.Join(sharedDir(t, "drover-realmta-dns-"), "resolv.conf")
	if err := os.WriteFile(resolvConf, []byte("nameserver "+dnsHost+"\noptions timeout:2 attempts:2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The domains the MTAs resolve through DNS: nx.test has no record.
	dns := dnstest.StartAt(t, net.JoinHostPort(dnsHost, "53"), `
test.  300 IN SOA ns.test. hostmaster.test. 1 3600 600 86400 30
ns.test. 300 IN A 127.0.9.53
`)
	// After the MTAs' subtests: an NXDOMAIN from the machine's own
	// resolver would have passed for one of ours.
	var ran atomic.Int32 // MTAs that got the messages
	t.Cleanup(func() {
		if ran.Load() > 0 && dns.Queries() == 0 {
			t.Error("no MTA asked the test's DNS server: the mount namespace's resolv.conf was not used")
		}
	})

	peers := []struct {
		name  string
		start func(t *testing.T, r route) string
	}{
		{"postfix", startPostfix},
		{"exim", startExim},
		{"opensmtpd", startOpenSMTPD},
	}
	for _, p := range peers {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			runMTA(t, resolvConf, p.start, &ran)
		})
	}
}

// dnsHost is the loopback address whose port 53 the test's DNS server
// serves, for the MTAs' resolvers.
const dnsHost = "127.0.9.53"

// A bounceCase is one message an MTA fails to deliver.
type bounceCase struct {
	name   string
	rcpt   string // the recipient, whose domain says what happens to it
	reason string
	class  string
}

var bounceCases = []bounceCase{
	// The next hop refuses the recipient: 550 5.1.1 ... User unknown.
	{"userunknown", "nobody@user.test", "userunknown", "hard"},
	// DNS says the domain does not exist.
	{"hostunknown", "someone@nx.test", "hostunknown", "hard"},
	// Nothing listens at the next hop, and the MTA soon gives up. The
	// bounces say so as expiries: Postfix a 4.4.1 "Connection refused"
	// with Action: failed (a temporary failure made final), Exim "retry
	// timeout exceeded", OpenSMTPD "Envelope expired" with 4.4.7.
	{"refused", "someone@refused.test", "expired", "soft"},
	// The next hop refuses the message after DATA for its policy.
	{"policy", "someone@policy.test", "policyviolation", "soft"},
	// The next hop defers every recipient until the message expires.
	{"expired", "someone@defer.test", "expired", "soft"},
}

// sender is the envelope sender of case c; its bounce comes back to it.
func (c bounceCase) sender() string { return "case-" + c.name + "@sender.test" }

// route says where an MTA under test sends mail: user.test, policy.test
// and defer.test to NextHop, refused.test to Closed, sender.test to Sink,
// anything else (nx.test) by DNS.
type route struct {
	Dir      string // a directory of the instance's own, traversable by its users
	Port     int    // the port the MTA is to accept mail on
	NextHop  hostPort
	Sink     hostPort
	Closed   hostPort
	Resolver string // the resolv.conf to mount over /etc/resolv.conf
}

type hostPort struct {
	Host string
	Port int
}

func splitAddr(t *testing.T, addr string) hostPort {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return hostPort{h, n}
}

// nextHop answers as the recipients' domains say: user.test's users are
// unknown, defer.test defers every recipient, and every message that
// reaches DATA (only policy.test's do) is refused for policy.
func nextHop(c testkit.Command) error {
	switch c.Verb {
	case "RCPT":
		switch {
		case strings.HasSuffix(c.Arg, "@user.test"):
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1},
				Message: "<" + c.Arg + ">: Recipient address rejected: User unknown"}
		case strings.HasSuffix(c.Arg, "@defer.test"):
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0},
				Message: "<" + c.Arg + ">: Temporary failure, please try again later"}
		}
	case "DATA":
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1},
			Message: "Message rejected due to local policy"}
	}
	return nil
}

// runMTA starts an MTA with start, sends it the cases' messages, counts
// it in ran and checks the classification of each bounce.
func runMTA(t *testing.T, resolvConf string, start func(*testing.T, route) string, ran *atomic.Int32) {
	// Three loopback addresses: OpenSMTPD holds back every connection to
	// an address that refused one, whatever the port.
	next := testkit.StartMX(t, testkit.MXOptions{Name: "next.test", Answer: nextHop})
	sink := testkit.StartMX(t, testkit.MXOptions{Name: "sink.test", Listener: listen(t, "127.0.0.3"),
		Answer: func(testkit.Command) error { return nil }})
	closed := listen(t, "127.0.0.2")
	closed.Close() // nothing listens there now
	r := route{
		Dir:      sharedDir(t, "drover-realmta-"),
		Port:     freePort(t),
		NextHop:  splitAddr(t, next.Addr),
		Sink:     splitAddr(t, sink.Addr),
		Closed:   splitAddr(t, closed.Addr().String()),
		Resolver: resolvConf,
	}
	addr := start(t, r)
	for _, c := range bounceCases {
		msg := fmt.Sprintf("From: Sender <%s>\r\nTo: <%s>\r\nSubject: realmta %s\r\n"+
			"Message-ID: <%s.realmta@sender.test>\r\nDate: %s\r\n\r\nA message that is not to arrive.\r\n",
			c.sender(), c.rcpt, c.name, c.name, time.Now().Format(time.RFC1123Z))
		if err := submit(addr, c.sender(), c.rcpt, msg); err != nil {
			t.Fatalf("%s: submit: %v", c.name, err)
		}
	}
	ran.Add(1)
	// A subtest, so that the bounces that did come back are still checked.
	t.Run("arrival", func(t *testing.T) { sink.Wait(t, len(bounceCases), 45*time.Second) })

	bounces := map[string][]byte{}
	for _, tx := range sink.Transactions() {
		for _, rcpt := range tx.Rcpts {
			if tx.From != "" {
				t.Errorf("a message to %s from %q, not a bounce (null sender):\n%s", rcpt, tx.From, tx.Data)
			}
			rcpt = strings.ToLower(rcpt)
			if first, dup := bounces[rcpt]; dup {
				t.Errorf("two reports came back to %s, want one:\n%s\n----\n%s", rcpt, excerpt(first), excerpt(tx.Data))
				continue
			}
			bounces[rcpt] = tx.Data
		}
	}
	for _, c := range bounceCases {
		t.Run(c.name, func(t *testing.T) {
			raw, ok := bounces[c.sender()]
			if !ok {
				t.Fatalf("no bounce came back to %s", c.sender())
			}
			// go test -artifacts keeps the bounce.
			name := strings.Join(strings.Split(t.Name(), "/")[1:], "-") + ".eml"
			if err := os.WriteFile(filepath.Join(t.ArtifactDir(), name), raw, 0o644); err != nil {
				t.Error(err)
			}
			checkBounce(t, c, raw)
		})
	}
}

// submit sends msg from sender to rcpt by plain SMTP to addr.
func submit(addr, sender, rcpt, msg string) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SendMail(sender, []string{rcpt}, strings.NewReader(msg)); err != nil {
		return err
	}
	return c.Quit()
}

// checkBounce classifies the bounce raw of case c and checks the
// recipient, reason and class.
func checkBounce(t *testing.T, c bounceCase, raw []byte) {
	t.Helper()
	cls, err := bounce.ParseMessage(raw)
	if err != nil {
		t.Fatalf("ParseMessage: %v\n%s", err, excerpt(raw))
	}
	var got *bounce.Classification
	for i := range cls {
		if strings.EqualFold(cls[i].Recipient, c.rcpt) {
			got = &cls[i]
		}
	}
	if got == nil {
		var all []string
		for _, cl := range cls {
			all = append(all, string(cl.JSON()))
		}
		t.Fatalf("no classification of %s among %d:\n%s\nbounce:\n%s", c.rcpt, len(cls), strings.Join(all, "\n"), excerpt(raw))
	}
	t.Logf("recipient=%s status=%s reason=%s class=%s diagnostic=%q",
		got.Recipient, got.Status, got.Reason, got.Class, got.Diagnostic)
	if len(cls) != 1 {
		t.Errorf("%d classifications, want 1 (for %s)", len(cls), c.rcpt)
	}
	if got.Reason != c.reason || got.Class != c.class {
		t.Errorf("reason %s, class %s; want reason %s, class %s\nclassification: %s\nbounce:\n%s",
			got.Reason, got.Class, c.reason, c.class, got.JSON(), excerpt(raw))
	}
}

// excerpt is the bounce without the returned message's body, to show
// in a failure: its headers, human-readable part and delivery status.
func excerpt(raw []byte) string {
	const max = 6000
	s := string(bytes.ReplaceAll(raw, []byte("\r\n"), []byte("\n")))
	if len(s) > max {
		s = s[:max] + "\n[...]"
	}
	return s
}

// needPeer skips the test for want, or fails it under CI, where
// .ci/peers installs everything.
func needPeer(t *testing.T, want string) {
	t.Helper()
	msg := "needs " + want + ": run .ci/peers as root (it installs Exim and OpenSMTPD into /opt/drover-peers) and run the test as root"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// needBinary returns path if it is an executable, else skips or fails.
func needBinary(t *testing.T, path string) string {
	t.Helper()
	if fi, err := os.Stat(path); err != nil || fi.Mode()&0o111 == 0 {
		needPeer(t, path)
	}
	return path
}

// sharedDir makes a directory that the MTAs' unprivileged users can
// traverse (t.TempDir's parent is private to root), removed at the end.
func sharedDir(t *testing.T, prefix string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("removing %s: %v", dir, err)
		}
	})
	return dir
}

// freePort returns a port of 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln := listen(t, "127.0.0.1")
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// listen listens on a free port of host.
func listen(t *testing.T, host string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// shellQuote quotes s for sh.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// inNamespace returns a command that runs argv in a private mount
// namespace where each binds[i][0] is mounted over binds[i][1]. It runs
// in a process group of its own, and its output goes to log.
func inNamespace(log string, binds [][2]string, argv ...string) *exec.Cmd {
	var script strings.Builder
	for _, b := range binds {
		fmt.Fprintf(&script, "mount --bind %s %s && ", shellQuote(b[0]), shellQuote(b[1]))
	}
	script.WriteString(`exec "$@"`)
	args := append([]string{"--mount", "--propagation", "private", "sh", "-c", script.String(), "sh"}, argv...)
	cmd := exec.Command("unshare", args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if f, err := os.OpenFile(log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err == nil {
		cmd.Stdout, cmd.Stderr = f, f
	}
	return cmd
}

// startDaemon starts cmd, a daemon that stays in the foreground, and has
// it stopped (with stop, or else SIGTERM to its process group) at the
// end of the test.
func startDaemon(t *testing.T, cmd *exec.Cmd, log string, stop func()) {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", cmd.Args, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		if stop != nil {
			stop()
		} else {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		}
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			if b, err := os.ReadFile(log); err == nil {
				t.Logf("%s:\n%s", log, tail(b, 60))
			}
		}
	})
	select {
	case err := <-done:
		b, _ := os.ReadFile(log)
		t.Fatalf("%s exited: %v\n%s", cmd.Args, err, tail(b, 40))
	case <-time.After(50 * time.Millisecond):
	}
}

// waitListening waits until addr accepts connections.
func waitListening(t *testing.T, addr, log string) {
	t.Helper()
	testkit.WaitFor(t, 15*time.Second, addr+" to listen (log: "+log+")", func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

// tail returns the last n lines of b.
func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// ---------------------------------------------------------------- Postfix

// startPostfix runs a private Postfix instance (its master in the
// foreground) that tries each message once: maximal_queue_lifetime = 0
// turns the first temporary failure into a bounce.
func startPostfix(t *testing.T, r route) string {
	postfix := "/usr/sbin/postfix"
	if p, err := exec.LookPath("postfix"); err == nil {
		postfix = p
	}
	needBinary(t, postfix)
	etc := filepath.Join(r.Dir, "etc")
	spool := filepath.Join(r.Dir, "spool")
	log := filepath.Join(r.Dir, "maillog")
	for _, d := range []string{etc, spool} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	relay := func(h hostPort) string { return fmt.Sprintf("smtp:[%s]:%d", h.Host, h.Port) }
	writeFile(t, filepath.Join(etc, "transport"), fmt.Sprintf(
		"user.test %s\npolicy.test %s\ndefer.test %s\nsender.test %s\nrefused.test %s\n",
		relay(r.NextHop), relay(r.NextHop), relay(r.NextHop), relay(r.Sink), relay(r.Closed)))
	writeFile(t, filepath.Join(etc, "main.cf"), fmt.Sprintf(`compatibility_level = 3.6
queue_directory = %[1]s
data_directory = %[2]s/data
maillog_file = %[3]s
maillog_file_prefixes = %[2]s
syslog_name = postfix-realmta
myhostname = postfix.mta.test
mydomain = mta.test
myorigin = $myhostname
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
mydestination =
relay_domains =
local_recipient_maps =
alias_maps =
alias_database =
transport_maps = texthash:%[4]s/transport
smtp_tls_security_level = none
smtpd_tls_security_level = none
biff = no
maximal_queue_lifetime = 0
bounce_queue_lifetime = 0
smtp_connect_timeout = 5s
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
`, spool, r.Dir, log, etc))
	writeFile(t, filepath.Join(etc, "master.cf"), fmt.Sprintf(`127.0.0.1:%d inet n - n - - smtpd
pickup     unix  n - n 60    1 pickup
cleanup    unix  n - n -     0 cleanup
qmgr       unix  n - n 300   1 qmgr
rewrite    unix  - - n -     - trivial-rewrite
bounce     unix  - - n -     0 bounce
defer      unix  - - n -     0 bounce
trace      unix  - - n -     0 bounce
verify     unix  - - n -     1 verify
flush      unix  n - n 1000? 0 flush
proxymap   unix  - - n -     - proxymap
proxywrite unix  - - n -     1 proxymap
smtp       unix  - - n -     - smtp
relay      unix  - - n -     - smtp
showq      unix  n - n -     - showq
error      unix  - - n -     - error
retry      unix  - - n -     - error
discard    unix  - - n -     - discard
anvil      unix  - - n -     1 anvil
scache     unix  - - n -     1 scache
postlog    unix-dgram n - n - 1 postlogd
`, r.Port))
	run(t, postfix, "-c", etc, "check")
	cmd := inNamespace(filepath.Join(r.Dir, "master.log"), [][2]string{{r.Resolver, "/etc/resolv.conf"}},
		postfix, "-c", etc, "start-fg")
	startDaemon(t, cmd, log, func() { exec.Command(postfix, "-c", etc, "stop").Run() })
	addr := fmt.Sprintf("127.0.0.1:%d", r.Port)
	waitListening(t, addr, log)
	return addr
}

// ------------------------------------------------------------------- Exim

const eximBinary = "/opt/drover-peers/exim/usr/sbin/exim4"

// startExim runs a private Exim daemon whose retry rule gives up on a
// temporary failure two seconds after the first, with a queue run every
// second.
func startExim(t *testing.T, r route) string {
	exim := needBinary(t, eximBinary)
	u, err := user.Lookup("Debian-exim")
	if err != nil {
		needPeer(t, "the user Debian-exim")
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	spool := filepath.Join(r.Dir, "spool")
	logs := filepath.Join(r.Dir, "log")
	for _, d := range []string{spool, logs} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(d, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	conf := filepath.Join(r.Dir, "exim.conf")
	writeFile(t, conf, fmt.Sprintf(`primary_hostname = exim.mta.test
qualify_domain = exim.mta.test
exim_path = %[11]s
exim_user = Debian-exim
exim_group = %[1]s
spool_directory = %[2]s
log_file_path = %[3]s/%%slog
local_interfaces = <; 127.0.0.1
daemon_smtp_ports = %[4]d
keep_environment =
tls_advertise_hosts =
host_lookup =
rfc1413_hosts =
acl_smtp_rcpt = acl_rcpt
delay_warning = 0s
never_users =

begin acl
acl_rcpt:
  accept

begin routers
nexthop:
  driver = manualroute
  domains = user.test : policy.test : defer.test
  route_list = * %[5]s
  transport = nexthop
  self = send
sink:
  driver = manualroute
  domains = sender.test
  route_list = * %[7]s
  transport = sink
  self = send
refused:
  driver = manualroute
  domains = refused.test
  route_list = * %[9]s
  transport = refused
  self = send
dnslookup:
  driver = dnslookup
  transport = nexthop
  no_more

begin transports
nexthop:
  driver = smtp
  port = %[6]d
  allow_localhost
  hosts_try_fastopen =
sink:
  driver = smtp
  port = %[8]d
  allow_localhost
  hosts_try_fastopen =
refused:
  driver = smtp
  port = %[10]d
  allow_localhost
  hosts_try_fastopen =

begin retry
* * F,2s,1s
`, groupName(t, u.Gid), spool, logs, r.Port, r.NextHop.Host, r.NextHop.Port, r.Sink.Host, r.Sink.Port, r.Closed.Host, r.Closed.Port, exim))
	log := filepath.Join(logs, "mainlog")
	cmd := inNamespace(filepath.Join(r.Dir, "daemon.log"), [][2]string{{r.Resolver, "/etc/resolv.conf"}},
		exim, "-C", conf, "-bdf", "-q1s")
	// Exim's delivery processes leave the daemon's process group, and one
	// still running after the daemon would write its log into the
	// removed directory: they are waited for (and then killed) by the
	// config file on their command line.
	startDaemon(t, cmd, log, func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		endStragglers(t, conf)
	})
	addr := fmt.Sprintf("127.0.0.1:%d", r.Port)
	waitListening(t, addr, log)
	return addr
}

// endStragglers waits up to 10 seconds for the processes whose command
// line names marker (a path of the test's own) to end, then kills them.
func endStragglers(t *testing.T, marker string) {
	t.Helper()
	find := func() []int {
		var pids []int
		dirs, _ := os.ReadDir("/proc")
		for _, d := range dirs {
			pid, err := strconv.Atoi(d.Name())
			if err != nil || pid == os.Getpid() {
				continue
			}
			if b, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline")); err == nil && bytes.Contains(b, []byte(marker)) {
				pids = append(pids, pid)
			}
		}
		return pids
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && len(find()) > 0 {
		time.Sleep(50 * time.Millisecond) // nothing signals their end to a non-parent
	}
	for _, pid := range find() {
		t.Logf("killing %d, still running after its daemon", pid)
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

func groupName(t *testing.T, gid string) string {
	t.Helper()
	g, err := user.LookupGroupId(gid)
	if err != nil {
		t.Fatal(err)
	}
	return g.Name
}

// -------------------------------------------------------------- OpenSMTPD

const smtpdBinary = "/opt/drover-peers/opensmtpd/usr/sbin/smtpd"

// startOpenSMTPD runs a private smtpd in the foreground. Its spool and
// control socket are compiled in (/var/spool/smtpd, /run/smtpd.sock),
// so the mount namespace gets private ones; queue ttl 2s makes it give up
// on a temporary failure.
func startOpenSMTPD(t *testing.T, r route) string {
	smtpd := needBinary(t, smtpdBinary)
	for _, u := range []string{"opensmtpd", "opensmtpq"} {
		if _, err := user.Lookup(u); err != nil {
			needPeer(t, "the user "+u)
		}
	}
	if _, err := os.Stat("/var/spool/smtpd"); err != nil {
		needPeer(t, "the directory /var/spool/smtpd")
	}
	spool := filepath.Join(r.Dir, "spool")
	runDir := filepath.Join(r.Dir, "run")
	for _, d := range []string{spool, runDir} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	relay := func(h hostPort) string { return fmt.Sprintf(`"smtp://%s:%d"`, h.Host, h.Port) }
	conf := filepath.Join(r.Dir, "smtpd.conf")
	writeFile(t, conf, fmt.Sprintf(`queue ttl 2s
listen on 127.0.0.1 port %d hostname opensmtpd.mta.test
action "nexthop" relay host %s helo opensmtpd.mta.test
action "sink" relay host %s helo opensmtpd.mta.test
action "refused" relay host %s helo opensmtpd.mta.test
action "dns" relay helo opensmtpd.mta.test
match from any for domain { "user.test", "policy.test", "defer.test" } action "nexthop"
match from any for domain "sender.test" action "sink"
match from any for domain "refused.test" action "refused"
match from any for any action "dns"
`, r.Port, relay(r.NextHop), relay(r.Sink), relay(r.Closed)))
	if err := os.Chmod(conf, 0o600); err != nil {
		t.Fatal(err)
	}
	// /etc/resolv.conf may be a link into /run (systemd-resolved): the
	// private /run then needs a file there to mount the test's over.
	if real, err := filepath.EvalSymlinks("/etc/resolv.conf"); err == nil && strings.HasPrefix(real, "/run/") {
		stub := filepath.Join(runDir, strings.TrimPrefix(real, "/run/"))
		if err := os.MkdirAll(filepath.Dir(stub), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, stub, "")
	}
	log := filepath.Join(r.Dir, "smtpd.log")
	cmd := inNamespace(log, [][2]string{
		{runDir, "/run"},
		{spool, "/var/spool/smtpd"},
		{r.Resolver, "/etc/resolv.conf"},
	}, smtpd, "-d", "-v", "-f", conf)
	startDaemon(t, cmd, log, nil)
	addr := fmt.Sprintf("127.0.0.1:%d", r.Port)
	waitListening(t, addr, log)
	return addr
}
