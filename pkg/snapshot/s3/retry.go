package s3

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"net/url"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/weirstream/weir/pkg/config"
)

// Error is a failed S3 request. It names the operation, the bucket and
// key, the S3 error code and HTTP status (or the transport error) and how
// many attempts were made; never credentials. A missing object matches
// fs.ErrNotExist, an object that a conditional create found matches
// fs.ErrExist.
type Error struct {
	Op       string // put, get, delete, list, copy, ...
	Bucket   string
	Key      string
	Code     string // S3 error code, e.g. SlowDown; "" for a transport error
	Message  string
	Status   int // HTTP status; 0 for a transport error
	Endpoint string
	Attempts int
	Err      error // the transport error, or the context's
	// Deadline is the context's error when the request gave up because
	// its deadline left no time for another attempt (or it was canceled).
	Deadline error
	// Hint says which setting to look at when the configuration is the
	// likely cause (an endpoint certificate that no trusted CA signed).
	Hint string
}

func (e *Error) Error() string {
	what := "s3://" + e.Bucket
	if e.Key != "" {
		what += "/" + e.Key
	}
	var cause string
	switch {
	case e.Code != "":
		cause = fmt.Sprintf("%s: %s (HTTP %d)", e.Code, e.Message, e.Status)
	case e.Err != nil:
		cause = fmt.Sprintf("%v (endpoint %s)", e.Err, e.Endpoint)
	}
	switch {
	case e.Deadline != nil && e.Attempts > 1:
		cause += fmt.Sprintf("; gave up after %d attempts within the deadline", e.Attempts)
	case e.Deadline != nil && !errors.Is(e.Err, e.Deadline):
		cause += fmt.Sprintf("; %v", e.Deadline)
	case e.Attempts > 1:
		cause += fmt.Sprintf("; gave up after %d attempts", e.Attempts)
	}
	if e.Hint != "" {
		cause += "; " + e.Hint
	}
	return fmt.Sprintf("s3 %s %s: %s", e.Op, what, cause)
}

// Unwrap returns the transport error and the context's, if any.
func (e *Error) Unwrap() []error {
	var errs []error
	for _, err := range []error{e.Err, e.Deadline} {
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

func (e *Error) Is(target error) bool {
	switch target {
	case fs.ErrNotExist:
		return e.Code == "NoSuchKey" || e.Code == "NoSuchUpload"
	case fs.ErrExist:
		return e.Code == "PreconditionFailed"
	}
	return false
}

// newError describes err, from minio-go, as an *Error.
func (s *store) newError(op, bucket, key string, err error, attempts int) *Error {
	e := &Error{Op: op, Bucket: bucket, Key: key, Endpoint: s.endpoint, Attempts: attempts}
	var resp minio.ErrorResponse
	if errors.As(err, &resp) && (resp.Code != "" || resp.StatusCode != 0) {
		e.Code, e.Message, e.Status = resp.Code, resp.Message, resp.StatusCode
		if e.Code == "" {
			e.Code = "HTTP" + fmt.Sprint(resp.StatusCode)
		}
		return e
	}
	// A url.Error repeats the request's URL: the endpoint and key are
	// said already (and a URL could carry a presigned query).
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	e.Err = err
	e.Hint = s.tlsHint(err)
	return e
}

// tlsHint says what to change when err is a TLS failure that the
// configuration causes, "" for any other error.
func (s *store) tlsHint(err error) string {
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		record   tls.RecordHeaderError
	)
	switch {
	case errors.As(err, &unknown) && s.cfg.CAFile != "":
		return fmt.Sprintf("the certificate of %s %s (%q, issuer %q) is not signed by %s %s",
			config.S3Endpoint.Key, s.endpoint, unknown.Cert.Subject.String(), unknown.Cert.Issuer.String(), config.S3SSLCA.Key, s.cfg.CAFile)
	case errors.As(err, &unknown):
		return fmt.Sprintf("the certificate of %s %s (%q, issuer %q) is not signed by a CA of the system roots: set %s to the PEM file of its CA",
			config.S3Endpoint.Key, s.endpoint, unknown.Cert.Subject.String(), unknown.Cert.Issuer.String(), config.S3SSLCA.Key)
	case errors.As(err, &hostname):
		return fmt.Sprintf("the certificate of %s %s is not valid for that name", config.S3Endpoint.Key, s.endpoint)
	case errors.As(err, &record):
		return fmt.Sprintf("%s %s does not serve HTTPS: use http://%s for a plaintext store", config.S3Endpoint.Key, s.endpoint, s.endpoint)
	}
	return ""
}

// permanentTLS tells whether err is a TLS failure that repeating cannot
// mend: the endpoint's certificate is not trusted (or not valid), or it
// does not speak TLS.
func permanentTLS(err error) bool {
	var (
		verify   *tls.CertificateVerificationError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		record   tls.RecordHeaderError
	)
	return errors.As(err, &verify) || errors.As(err, &unknown) || errors.As(err, &hostname) || errors.As(err, &invalid) || errors.As(err, &record)
}

// retryableCodes are the S3 error codes of a request worth repeating:
// throttling, and the server's own failures.
var retryableCodes = map[string]bool{
	"SlowDown": true, "SlowDownWrite": true, "SlowDownRead": true,
	"Throttling": true, "ThrottlingException": true, "RequestLimitExceeded": true, "RequestThrottled": true,
	"InternalError": true, "ServiceUnavailable": true, "RequestTimeout": true,
	"XMinioServerNotInitialized": true,
}

// retryable reports whether a request that failed with err may succeed if
// repeated: throttling (503 SlowDown, 429), a server error (5xx) or a
// transport error (refused, reset, cut short). A client error (4xx: a
// missing bucket, a wrong key, a refused condition) is final, and so is
// an endpoint certificate that is not trusted.
func retryable(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || permanentTLS(err) {
		return false
	}
	var resp minio.ErrorResponse
	if errors.As(err, &resp) && (resp.Code != "" || resp.StatusCode != 0) {
		return retryableCodes[resp.Code] || resp.StatusCode >= 500 || resp.StatusCode == 429 || resp.StatusCode == 408
	}
	var ne net.Error
	var ue *url.Error
	return errors.As(err, &ne) || errors.As(err, &ue) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// do runs one request, f, until it succeeds, fails with an error that is
// not retryable, or ctx's deadline (without one, the retry budget) leaves
// no time for another attempt. Waits double from MinBackoff up to
// MaxBackoff, each drawn at random from its upper half (jitter), so that
// tasks throttled together do not come back together.
func (s *store) do(ctx context.Context, op, bucket, key string, f func(ctx context.Context) error) error {
	// Without a deadline, the budget bounds the retries but not a request
	// (nor the body of a GET, which is read after do returns).
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(s.cfg.RetryBudget)
	}
	wait := s.cfg.MinBackoff
	var last error // the last error that was not the context's
	for attempt := 1; ; attempt++ {
		err := f(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() == nil || last == nil {
			last = err
		}
		if ctx.Err() != nil {
			// The last cause of the failure says more than "context
			// deadline exceeded".
			return s.fail(op, bucket, key, last, attempt, ctx.Err())
		}
		if !retryable(err) {
			return s.fail(op, bucket, key, err, attempt, nil)
		}
		d := wait/2 + rand.N(wait/2+1)
		if time.Until(deadline) < d {
			return s.fail(op, bucket, key, err, attempt, context.DeadlineExceeded)
		}
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return s.fail(op, bucket, key, err, attempt, ctx.Err())
		}
		wait = min(2*wait, s.cfg.MaxBackoff)
	}
}

func (s *store) fail(op, bucket, key string, err error, attempts int, deadline error) error {
	e := s.newError(op, bucket, key, err, attempts)
	e.Deadline = deadline
	return e
}
