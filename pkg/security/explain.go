package security

import (
	"fmt"
	"strings"
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
func ExplainAPIError(err error, c *TLS) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	var why string
	switch {
	case strings.Contains(msg, "tls: certificate required"), strings.Contains(msg, "the server requires a client certificate"):
		why = "the job API requires a client certificate (security.ssl.api.authentication-enabled on the server): " +
			"set security.ssl.api.cert and security.ssl.api.key"
	case strings.Contains(msg, "remote error: tls: bad certificate"), strings.Contains(msg, "remote error: tls: unknown certificate authority"),
		strings.Contains(msg, "the server accepts client certificates of other CAs only"):
		why = "the job API refused this client's certificate (security.ssl.api.cert): it must be signed by the server's security.ssl.api.ca"
	case strings.Contains(msg, "first record does not look like a TLS handshake"):
		why = "the job API does not use TLS, but security.ssl.api.enabled is true here"
	case c != nil && strings.Contains(msg, "x509: certificate signed by unknown authority"):
		ca := "the system's roots"
		if f := c.Files(); f.CA != "" {
			ca = f.CAKey + " (" + f.CA + ")"
		}
		why = "the job API's certificate is not signed by " + ca
	case c != nil && (strings.Contains(msg, "x509: certificate is valid for") || strings.Contains(msg, "doesn't contain any IP SANs")):
		why = "the job API's certificate does not name the address dialled: connect by a name or IP in its subject alternative names"
	case c == nil && (strings.Contains(msg, "error reading server preface: EOF") ||
		strings.Contains(msg, "error reading server preface: read tcp") && strings.Contains(msg, "connection reset by peer") ||
		strings.Contains(msg, "error reading server preface: connection reset by peer")):
		// The server's close of a connection with unread bytes (the
		// plaintext request) arrives as a FIN or, as often, a reset.
		why = "the job API closed the connection before answering: if it uses TLS, set security.ssl.api.enabled (and security.ssl.api.ca)"
	default:
		return err
	}
	return fmt.Errorf("%s: %w", why, err)
}
