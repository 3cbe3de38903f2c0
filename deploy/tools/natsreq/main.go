// Command natsreq sends one request to a NATS server over an authenticated client connection
// and prints the answer's payload: the deploy scripts' health and link checks (e.g.
// "$JS.API.INFO"), so the servers need no HTTP monitoring port. Standard library only; it
// speaks the plain NATS client protocol, with TLS when the server requires it.
//
//	natsreq [-timeout 2s] [-inbox PREFIX] URL SUBJECT
//
// The user, password and CA come from the environment (never the command line, which other
// users of the machine can read): NATS_USER, NATS_PASSWORD, NATS_CA (the CA file the server's
// certificate must chain to; needed for TLS). Replies arrive under PREFIX.<random> (default
// _INBOX.<user>, the prefix each user's permissions allow). Exit status 0 with the payload on
// stdout when an answer came; 1 with the reason on stderr when none did (refused, no
// responders, timeout).
package main

import (
	"bufio"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// serverInfo is the part of the server's INFO this tool reads.
type serverInfo struct {
	TLSRequired bool `json:"tls_required"`
	Headers     bool `json:"headers"`
}

// connectOptions is the CONNECT the tool sends.
type connectOptions struct {
	Verbose      bool   `json:"verbose"`
	Pedantic     bool   `json:"pedantic"`
	TLSRequired  bool   `json:"tls_required"`
	User         string `json:"user,omitempty"`
	Pass         string `json:"pass,omitempty"`
	Name         string `json:"name"`
	Lang         string `json:"lang"`
	Version      string `json:"version"`
	Protocol     int    `json:"protocol"`
	Headers      bool   `json:"headers"`
	NoResponders bool   `json:"no_responders"`
}

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
// empty request on subject and returns the answer's payload.
func request(serverURL, subject, inbox string, timeout time.Duration) ([]byte, error) {
	address, host, err := firstAddress(serverURL)
	if err != nil {
		return nil, err
	}
	user := os.Getenv("NATS_USER")
	if inbox == "" {
		inbox = "_INBOX"
		if user != "" {
			inbox += "." + user
		}
	}
	deadline := time.Now().Add(timeout)
	raw, err := net.DialTimeout("tcp", address, timeout)
	if err != nil {
		return nil, err
	}
	defer raw.Close()
	raw.SetDeadline(deadline)

	reader := bufio.NewReader(raw)
	line, err := readLine(reader)
	if err != nil {
		return nil, fmt.Errorf("reading INFO: %w", err)
	}
	infoJSON, ok := strings.CutPrefix(line, "INFO ")
	if !ok {
		return nil, fmt.Errorf("not a NATS server: %.80q", line)
	}
	var info serverInfo
	if err := json.Unmarshal([]byte(infoJSON), &info); err != nil {
		return nil, fmt.Errorf("server INFO: %w", err)
	}
	var conn net.Conn = raw
	if info.TLSRequired {
		config, err := tlsConfig(host)
		if err != nil {
			return nil, err
		}
		secure := tls.Client(raw, config)
		secure.SetDeadline(deadline)
		if err := secure.Handshake(); err != nil {
			return nil, fmt.Errorf("TLS handshake: %w", err)
		}
		conn = secure
		reader = bufio.NewReader(secure)
	}

	connect, _ := json.Marshal(connectOptions{
		TLSRequired: info.TLSRequired, User: user, Pass: os.Getenv("NATS_PASSWORD"),
		Name: "rtdash-natsreq", Lang: "go", Version: "1", Protocol: 1,
		Headers: info.Headers, NoResponders: info.Headers,
	})
	reply := inbox + "." + randomToken()
	commands := fmt.Sprintf("CONNECT %s\r\nPING\r\nSUB %s 1\r\nPUB %s %s 0\r\n\r\nPING\r\n", connect, reply, subject, reply)
	if _, err := io.WriteString(conn, commands); err != nil {
		return nil, err
	}
	for {
		line, err := readLine(reader)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return nil, fmt.Errorf("no answer within %v", timeout)
			}
			return nil, err
		}
		switch {
		case strings.HasPrefix(line, "-ERR"):
			return nil, fmt.Errorf("server: %s", strings.TrimSpace(strings.TrimPrefix(line, "-ERR")))
		case line == "PING":
			io.WriteString(conn, "PONG\r\n")
		case strings.HasPrefix(line, "MSG "), strings.HasPrefix(line, "HMSG "):
			return readMessage(reader, line)
		}
	}
}

// readMessage reads the payload announced by a MSG or HMSG line; a header-only answer with a
// status (503: no responders) is an error.
func readMessage(reader *bufio.Reader, line string) ([]byte, error) {
	fields := strings.Fields(line)
	total, err := strconv.Atoi(fields[len(fields)-1])
	if err != nil {
		return nil, fmt.Errorf("bad message line %q", line)
	}
	headerSize := 0
	if fields[0] == "HMSG" {
		if headerSize, err = strconv.Atoi(fields[len(fields)-2]); err != nil {
			return nil, fmt.Errorf("bad message line %q", line)
		}
	}
	body := make([]byte, total+2)
	if _, err := io.ReadFull(reader, body); err != nil {
		return nil, err
	}
	header, payload := body[:headerSize], body[headerSize:total]
	if status, found := strings.CutPrefix(string(header), "NATS/1.0 "); found && len(payload) == 0 {
		status, _, _ = strings.Cut(status, "\r\n")
		if strings.HasPrefix(status, "503") {
			return nil, errors.New("no responders")
		}
		return nil, fmt.Errorf("status %s", status)
	}
	return payload, nil
}

// firstAddress returns host:port and the host of the first URL of a comma-separated list.
func firstAddress(serverURL string) (string, string, error) {
	first, _, _ := strings.Cut(serverURL, ",")
	if !strings.Contains(first, "://") {
		first = "nats://" + first
	}
	parsed, err := url.Parse(strings.TrimSpace(first))
	if err != nil {
		return "", "", fmt.Errorf("server URL: %w", err)
	}
	port := parsed.Port()
	if port == "" {
		port = "4222"
	}
	return net.JoinHostPort(parsed.Hostname(), port), parsed.Hostname(), nil
}

// tlsConfig trusts the CA in NATS_CA (else the system's roots) for host.
func tlsConfig(host string) (*tls.Config, error) {
	config := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	if path := os.Getenv("NATS_CA"); path != "" {
		pem, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("NATS_CA: %w", err)
		}
		config.RootCAs = x509.NewCertPool()
		if !config.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("NATS_CA %s: no certificate", path)
		}
	}
	return config, nil
}

func readLine(reader *bufio.Reader) (string, error) {
	line, err := reader.ReadString('\n')
	return strings.TrimRight(line, "\r\n"), err
}

func randomToken() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}
