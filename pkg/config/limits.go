package config

// Limits of the JobManager's public API that the client and the JobManager
// must agree on. They are constants, not options: `weir` checks them before
// it sends anything, and it never reads the cluster's configuration.
const (
	// MaxJobFileSize is the largest job file the JobManager accepts
	// (SubmitJobRequest.job_spec), and the most `weir run` reads: 1 MiB. A
	// job file describes operators, not data; the largest realistic one is
	// a few tens of KiB. It fits, with the request's other fields, in the
	// JobManager's gRPC message limit.
	MaxJobFileSize = 1 << 20
	// MaxPathLength bounds the paths and names a request carries (the job
	// file's name, a savepoint path): 4 KiB, Linux's PATH_MAX.
	MaxPathLength = 4096
)
