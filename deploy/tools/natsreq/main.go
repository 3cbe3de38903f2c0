// Command natsreq sends one request to a NATS server over an authenticated client connection
// and prints the answer's payload: the deploy scripts' health and link checks (e.g.
// "$JS.API.INFO"), so the servers need no HTTP monitoring port. It uses the official Go client
// (github.com/nats-io/nats.go), with TLS when the server requires it.
//
//	natsreq [-timeout 2s] [-inbox PREFIX] URL SUBJECT
//
// The user, password and CA come from the environment (never the command line, which other
// users of the machine can read): NATS_USER, NATS_PASSWORD, NATS_CA (the CA file the server's
// certificate must chain to; needed for TLS, and with it set the connection must be TLS).
// Only the first server of a comma-separated URL list is asked, without reconnects. Replies
// arrive under PREFIX.<random> (default _INBOX.<user>, the prefix each user's permissions
// allow). Exit status 0 with the payload on stdout when an answer came; 1 with the reason on
// stderr when none did (refused, no responders, timeout).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

func main() {
	timeout := flag.Duration("timeout", 2*time.Second, "how long to wait for the connection and the answer")
	inbox := flag.String("inbox", "", "reply subject prefix (default _INBOX.<user>)")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: natsreq [-timeout 2s] [-inbox PREFIX] URL SUBJECT  (NATS_USER, NATS_PASSWORD, NATS_CA from the environment)")
	}
	flag.Parse()
	if flag.NArg() != 2 {
		flag.Usage()
		os.Exit(2)
	}
	answer, err := request(flag.Arg(0), flag.Arg(1), *inbox, *timeout)
	if err != nil {
		fmt.Fprintf(os.Stderr, "natsreq: %s %s: %v\n", flag.Arg(0), flag.Arg(1), err)
		os.Exit(1)
	}
	os.Stdout.Write(answer)
	fmt.Println()
}

// request connects to the first server of serverURL (nats://host:port[,...]), sends an
// empty request on subject and returns the answer's payload; connecting and answering share
// one deadline, timeout from now.
func request(serverURL, subject, inbox string, timeout time.Duration) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()

	user := os.Getenv("NATS_USER")
	if inbox == "" {
		inbox = "_INBOX"
		if user != "" {
			inbox += "." + user
		}
	}
	dialer := &recordingDialer{dialer: net.Dialer{Timeout: timeout}}
	// An -ERR the server sends after connecting (a permissions violation) ends the wait.
	serverErrors := make(chan error, 1)
	options := []nats.Option{
		nats.Name("rtdash-natsreq"),
		nats.Timeout(timeout),
		nats.NoReconnect(),
		nats.DontRandomize(),
		nats.SetCustomDialer(dialer),
		nats.CustomInboxPrefix(inbox),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case serverErrors <- err:
			default:
			}
			cancel()
		}),
	}
	if user != "" || os.Getenv("NATS_PASSWORD") != "" {
		options = append(options, nats.UserInfo(user, os.Getenv("NATS_PASSWORD")))
	}
	if ca := os.Getenv("NATS_CA"); ca != "" {
		options = append(options, nats.RootCAs(ca))
	}

	first, _, _ := strings.Cut(serverURL, ",")
	conn, err := nats.Connect(strings.TrimSpace(first), options...)
	if err != nil {
		if errors.Is(err, nats.ErrNoServers) && dialer.err() != nil {
			return nil, dialer.err() // the cause, e.g. "connection refused"
		}
		return nil, describe(err, timeout)
	}
	defer conn.Close()

	answer, err := conn.RequestWithContext(ctx, subject, nil)
	if err != nil {
		select {
		case serverError := <-serverErrors:
			return nil, describe(serverError, timeout)
		default:
			return nil, describe(err, timeout)
		}
	}
	// A header-only answer with a status (the client turns 503 into ErrNoResponders) is an error.
	if status := answer.Header.Get("Status"); status != "" && len(answer.Data) == 0 {
		return nil, fmt.Errorf("status %s", strings.TrimSpace(status+" "+answer.Header.Get("Description")))
	}
	return answer.Data, nil
}

// describe words the client's errors as this tool always has: "no answer within ...",
// "no responders", "server: '<the server's -ERR>'", "TLS handshake: <cause>".
func describe(err error, timeout time.Duration) error {
	switch {
	case errors.Is(err, nats.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("no answer within %v", timeout)
	case errors.Is(err, nats.ErrNoResponders):
		return errors.New("no responders")
	case errors.Is(err, nats.ErrPermissionViolation):
		_, text, _ := strings.Cut(err.Error(), nats.ErrPermissionViolation.Error()+": ")
		return fmt.Errorf("server: '%s'", text)
	case errors.Is(err, nats.ErrAuthorization), errors.Is(err, nats.ErrAuthExpired),
		errors.Is(err, nats.ErrAuthRevoked), errors.Is(err, nats.ErrAccountAuthExpired):
		// The server's -ERR, as the client quotes it: "nats: <text>".
		return fmt.Errorf("server: '%s'", strings.TrimPrefix(err.Error(), "nats: "))
	case errors.Is(err, nats.ErrTLS):
		if joined, ok := err.(interface{ Unwrap() []error }); ok && len(joined.Unwrap()) == 2 {
			return fmt.Errorf("TLS handshake: %w", joined.Unwrap()[1])
		}
	}
	return err
}

// recordingDialer dials TCP and keeps the last dial error: the client reports a refused
// connection only as "no servers available", and this tool names the cause.
type recordingDialer struct {
	dialer  net.Dialer
	mu      sync.Mutex
	lastErr error
}

// Dial implements nats.CustomDialer.
func (d *recordingDialer) Dial(network, address string) (net.Conn, error) {
	conn, err := d.dialer.Dial(network, address)
	d.mu.Lock()
	d.lastErr = err
	d.mu.Unlock()
	return conn, err
}

func (d *recordingDialer) err() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.lastErr
}
