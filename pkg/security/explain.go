package security

import (
	"fmt"
	"strings"
)

// terms are the words of an explanation: who is called and which keys
// the caller sets.
type terms struct {
	server   string // "the job API"
	prefix   string // "security.ssl.api"
	authHint string // why the server wants a certificate
	client   string // "this client"
}

var (
	apiTerms = terms{server: "the job API", prefix: "security.ssl.api",
		authHint: "security.ssl.api.authentication-enabled on the server", client: "this client"}
	internalTerms = terms{server: "the JobManager", prefix: "security.ssl.internal",
		authHint: "security.ssl.internal.enabled on the JobManager", client: "this daemon"}
)

// ExplainAPIError puts a plain sentence in front of a job API call's error
// when the cause is TLS: the server wants TLS or a client certificate, or the
// certificates do not match. c is the CLI's TLS, nil when
// security.ssl.api.enabled is false. Other errors are returned unchanged; the
// result wraps err, so a gRPC status still reads through it.
//
// It matches the texts crypto/tls and grpc put in the status message, the
// only place the cause survives a gRPC call; an unmatched text only loses the
// sentence, never the error.
func ExplainAPIError(err error, c *TLS) error { return explain(err, c, apiTerms) }

// ExplainInternalError is ExplainAPIError for a daemon's calls to the
// JobManager (security.ssl.internal.*): c is nil when internal TLS is off.
func ExplainInternalError(err error, c *TLS) error { return explain(err, c, internalTerms) }

func explain(err error, c *TLS, t terms) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	var why string
	switch {
	case strings.Contains(msg, "tls: certificate required"), strings.Contains(msg, "the server requires a client certificate"):
		why = fmt.Sprintf("%s requires a client certificate (%s): set %s.cert and %s.key", t.server, t.authHint, t.prefix, t.prefix)
	case strings.Contains(msg, "remote error: tls: bad certificate"), strings.Contains(msg, "remote error: tls: unknown certificate authority"),
		strings.Contains(msg, "the server accepts client certificates of other CAs only"):
		why = fmt.Sprintf("%s refused %s's certificate (%s.cert): it must be signed by the server's %s.ca", t.server, t.client, t.prefix, t.prefix)
	case strings.Contains(msg, "first record does not look like a TLS handshake"):
		why = fmt.Sprintf("%s does not use TLS, but %s.enabled is true here", t.server, t.prefix)
	case c != nil && strings.Contains(msg, "x509: certificate signed by unknown authority"):
		ca := "the system's roots"
		if f := c.Files(); f.CA != "" {
			ca = f.CAKey + " (" + f.CA + ")"
		}
		why = fmt.Sprintf("%s's certificate is not signed by %s", t.server, ca)
	case c != nil && (strings.Contains(msg, "x509: certificate is valid for") || strings.Contains(msg, "doesn't contain any IP SANs")):
		why = fmt.Sprintf("%s's certificate does not name the address dialled: connect by a name or IP in its subject alternative names", t.server)
	case c == nil && (strings.Contains(msg, "error reading server preface: EOF") ||
		strings.Contains(msg, "connection reset by peer") || strings.Contains(msg, "broken pipe")):
		// The server's close of a connection with unread bytes (the
		// plaintext request) arrives as a FIN or, as often, a reset, seen
		// while reading the server's preface or still writing ours.
		why = fmt.Sprintf("%s closed the connection before answering: if it uses TLS, set %s.enabled (and %s.ca)", t.server, t.prefix, t.prefix)
	default:
		return err
	}
	return fmt.Errorf("%s: %w", why, err)
}
