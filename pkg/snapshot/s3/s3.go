package s3

import (
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/s3utils"

	"github.com/weirstream/weir/pkg/config"
	"github.com/weirstream/weir/pkg/security"
	"github.com/weirstream/weir/pkg/snapshot"
)

// Scheme is the URI scheme the driver is registered under.
const Scheme = "s3"

// Defaults of Config.
const (
	// PartSize is the size of the parts of a multipart upload, and so the
	// memory a state writer buffers: above S3's minimum of 5 MiB, and
	// large enough that a 10,000-part upload holds 80 GiB.
	PartSize = 8 << 20
	// DefaultRetryBudget bounds the retries of a request whose context has
	// no deadline.
	DefaultRetryBudget = time.Minute
	// DefaultMinBackoff and DefaultMaxBackoff bound the wait between two
	// attempts: it doubles from the first to the second, with jitter.
	DefaultMinBackoff = 50 * time.Millisecond
	DefaultMaxBackoff = 2 * time.Second
)

// Secret is a credential: it prints as ****** however it is formatted or
// encoded, so that a Config can be logged.
type Secret string

func (Secret) String() string               { return config.RedactedValue }
func (Secret) Format(f fmt.State, _ rune)   { _, _ = f.Write([]byte(config.RedactedValue)) }
func (Secret) MarshalText() ([]byte, error) { return []byte(config.RedactedValue), nil }
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + config.RedactedValue + `"`), nil }
func (s Secret) reveal() string             { return string(s) }

// Config configures the driver: the s3.* keys of a daemon's configuration
// (ConfigFrom), plus retry settings for tests.
type Config struct {
	// Endpoint is host[:port] (HTTPS) or http(s)://host[:port]; empty
	// means Amazon S3.
	Endpoint string
	// CAFile is a PEM file of the CA certificates that verify an HTTPS
	// endpoint's certificate, instead of the system roots (s3.ssl.ca);
	// empty means the system roots.
	CAFile string
	// AccessKey and SecretKey are static credentials; both empty means
	// the standard chain (environment, ~/.aws/credentials, IAM).
	AccessKey, SecretKey Secret
	// Region of the buckets; empty: asked of the store.
	Region string
	// PathStyle addresses buckets as endpoint/bucket.
	PathStyle bool
	// EntropyKey, if set, is the path segment replaced by EntropyLength
	// random characters in the keys of state objects.
	EntropyKey    string
	EntropyLength int
	// RetryBudget, MinBackoff and MaxBackoff tune retries; zero means
	// the defaults.
	RetryBudget, MinBackoff, MaxBackoff time.Duration
	// Transport, if set, carries the requests (tests inject failures),
	// and CAFile is not used; nil means minio-go's default transport.
	Transport http.RoundTripper
}

// ConfigFrom reads the s3.* keys of a daemon's configuration.
func ConfigFrom(cfg *config.Config) Config {
	return Config{
		Endpoint:      cfg.String(config.S3Endpoint),
		CAFile:        cfg.String(config.S3SSLCA),
		AccessKey:     Secret(cfg.String(config.S3AccessKey)),
		SecretKey:     Secret(cfg.String(config.S3SecretKey)),
		Region:        cfg.String(config.S3Region),
		PathStyle:     cfg.Bool(config.S3PathStyleAccess),
		EntropyKey:    cfg.String(config.S3EntropyKey),
		EntropyLength: cfg.Int(config.S3EntropyLength),
	}
}

// Register registers the driver for s3:// with a daemon's configuration
// (snapshot.Register). Call it once, from main.
func Register(cfg *config.Config) error {
	d, err := New(ConfigFrom(cfg))
	if err != nil {
		return err
	}
	snapshot.Register(Scheme, d)
	return nil
}

// Driver is the s3:// storage driver; New makes one.
type Driver struct {
	st *store
}

var _ snapshot.Driver = (*Driver)(nil)

// New makes a driver: it checks c and makes (or reuses) the client, with
// no I/O but reading CAFile. Errors name the key at fault, never a
// credential.
func New(c Config) (*Driver, error) {
	if (c.AccessKey == "") != (c.SecretKey == "") {
		return nil, fmt.Errorf("s3: set both %s and %s, or neither (to use AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, ~/.aws/credentials or the instance's IAM role)",
			config.S3AccessKey.Key, config.S3SecretKey.Key)
	}
	if c.EntropyKey != "" {
		if strings.ContainsAny(c.EntropyKey, "/\\") || c.EntropyKey == "." || c.EntropyKey == ".." {
			return nil, fmt.Errorf("s3: %s %q must be a single path segment", config.S3EntropyKey.Key, c.EntropyKey)
		}
		if c.EntropyLength < 1 || c.EntropyLength > 64 {
			return nil, fmt.Errorf("s3: %s is %d, want 1 to 64", config.S3EntropyLength.Key, c.EntropyLength)
		}
	}
	host, secure, err := parseEndpoint(c.Endpoint)
	if err != nil {
		return nil, err
	}
	var roots *x509.CertPool
	if c.CAFile != "" {
		if roots, err = loadCA(c, secure); err != nil {
			return nil, err
		}
	}
	if c.RetryBudget <= 0 {
		c.RetryBudget = DefaultRetryBudget
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = DefaultMinBackoff
	}
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = max(DefaultMaxBackoff, c.MinBackoff)
	}
	cl, err := client(host, secure, roots, c)
	if err != nil {
		return nil, err
	}
	return &Driver{st: &store{
		client: cl, core: minio.Core{Client: cl}, endpoint: host, cfg: c,
	}}, nil
}

// parseEndpoint accepts host[:port] (HTTPS) and http(s)://host[:port].
func parseEndpoint(e string) (host string, secure bool, err error) {
	if e == "" {
		return "s3.amazonaws.com", true, nil
	}
	if strings.Contains(e, "@") {
		return "", false, fmt.Errorf("s3: %s must not hold credentials: set %s and %s", config.S3Endpoint.Key, config.S3AccessKey.Key, config.S3SecretKey.Key)
	}
	if !strings.Contains(e, "://") {
		e = "https://" + e
	}
	u, err := url.Parse(e)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", false, fmt.Errorf("s3: invalid %s %q: want host[:port], http://host[:port] or https://host[:port]", config.S3Endpoint.Key, e)
	}
	return u.Host, u.Scheme == "https", nil
}

// loadCA reads c.CAFile, the CA bundle of an HTTPS endpoint. It replaces
// the system roots, as AWS_CA_BUNDLE does: it is set for a store whose
// certificate a private CA signed, which nothing else should be trusted
// to sign for it.
func loadCA(c Config, secure bool) (*x509.CertPool, error) {
	if !secure {
		return nil, fmt.Errorf("s3: %s is set but %s %s is plaintext: use https://, or unset %s",
			config.S3SSLCA.Key, config.S3Endpoint.Key, c.Endpoint, config.S3SSLCA.Key)
	}
	// Package security's loading: bounded reads, and errors that name
	// the key, the file and what is wrong with it.
	t, err := security.NewAPIClient(security.Files{CA: c.CAFile, CAKey: config.S3SSLCA.Key}, security.Options{CheckInterval: security.DefaultCheckInterval})
	if err != nil {
		return nil, fmt.Errorf("s3: %w", err)
	}
	return t.ClientConfig().RootCAs, nil
}

// clients are the minio clients of this process, by endpoint and
// credentials: drivers made with the same settings share one (its
// connection pool and its cache of bucket regions).
var (
	clientsMu sync.Mutex
	clients   = map[[sha256.Size]byte]*minio.Client{}
)

func client(host string, secure bool, roots *x509.CertPool, c Config) (*minio.Client, error) {
	key := sha256.Sum256([]byte(fmt.Sprintf("%s\x00%t\x00%s\x00%s\x00%s\x00%t\x00%p\x00%s", host, secure, c.AccessKey.reveal(), c.SecretKey.reveal(), c.Region, c.PathStyle, c.Transport, c.CAFile)))
	clientsMu.Lock()
	defer clientsMu.Unlock()
	if cl, ok := clients[key]; ok {
		return cl, nil
	}
	var creds *credentials.Credentials
	if c.AccessKey != "" {
		creds = credentials.NewStaticV4(c.AccessKey.reveal(), c.SecretKey.reveal(), "")
	} else {
		creds = credentials.NewChainCredentials([]credentials.Provider{
			&credentials.EnvAWS{},
			&credentials.FileAWSCredentials{},
			&credentials.IAM{},
		})
	}
	lookup := minio.BucketLookupAuto
	if c.PathStyle {
		lookup = minio.BucketLookupPath
	}
	tr := c.Transport
	if tr == nil && roots != nil {
		dt, err := minio.DefaultTransport(true)
		if err != nil {
			return nil, fmt.Errorf("s3: endpoint %s: %w", host, err)
		}
		dt.TLSClientConfig.RootCAs = roots
		tr = dt
	}
	cl, err := minio.New(host, &minio.Options{
		Creds: creds, Secure: secure, Region: c.Region, BucketLookup: lookup, Transport: tr,
		// This package retries, within the caller's context.
		MaxRetries: 1,
	})
	if err != nil {
		// minio-go's messages name the endpoint, never the credentials.
		return nil, fmt.Errorf("s3: endpoint %s: %w", host, err)
	}
	clients[key] = cl
	return cl, nil
}

// Resolve parses s3://bucket/key into the driver's store and the native
// path bucket/key.
func (d *Driver) Resolve(pointer string) (snapshot.Store, string, error) {
	rest, ok := strings.CutPrefix(pointer, Scheme+"://")
	if !ok {
		return nil, "", fmt.Errorf("invalid s3 URI %q: want s3://bucket/path", pointer)
	}
	bucket, key, _ := strings.Cut(rest, "/")
	if strings.Contains(bucket, "@") {
		// Never echo it: it may hold credentials.
		return nil, "", fmt.Errorf("s3 URIs must not hold credentials (s3://user:secret@bucket): set %s and %s in the daemons' configuration",
			config.S3AccessKey.Key, config.S3SecretKey.Key)
	}
	if err := s3utils.CheckValidBucketName(bucket); err != nil {
		return nil, "", fmt.Errorf("invalid s3 URI %q: bucket %q: %v", pointer, bucket, err)
	}
	if strings.ContainsAny(key, "?#\\\x00") {
		return nil, "", fmt.Errorf("invalid s3 URI %q: want s3://bucket/path without a query, fragment or backslash", pointer)
	}
	key = strings.TrimRight(key, "/")
	if key != "" {
		for _, seg := range strings.Split(key, "/") {
			if seg == "" || seg == "." || seg == ".." {
				return nil, "", fmt.Errorf("invalid s3 URI %q: empty, . or .. path segment", pointer)
			}
		}
		return d.st, bucket + "/" + key, nil
	}
	return d.st, bucket, nil
}

// Display returns the s3:// pointer of a native path.
func (d *Driver) Display(native string) string { return Scheme + "://" + native }

// split returns the bucket and the key of a native path.
func split(native string) (bucket, key string) {
	bucket, key, _ = strings.Cut(native, "/")
	return bucket, key
}

var errNoKey = errors.New("names a bucket, not an object")
