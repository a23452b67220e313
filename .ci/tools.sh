#!/usr/bin/env bash
# Test tools that are not dependencies of weir, built once and cached outside
# the repository (never committed):
#   MinIO, the S3-compatible server that the s3:// storage tests start
#   (package pkg/internal/miniotest), built from source with go install:
#   about 10 minutes the first time on a 2-core machine, nothing after.
#
# Run it (it prints what it exports) or source it: it exports WEIR_MINIO,
# the path the tests use. The version must match miniotest.Version.
set -euo pipefail

MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
cache="${XDG_CACHE_HOME:-$HOME/.cache}/weir-tools"
dir="$cache/minio-$MINIO_VERSION"

if [ ! -x "$dir/minio" ]; then
  echo "tools: building MinIO $MINIO_VERSION into $dir (about 10 minutes, once)" >&2
  mkdir -p "$cache"
  tmp="$(mktemp -d "$cache/build.XXXXXX")"
  # A build of its own: outside this module, static, no VCS stamping.
  (cd "$tmp" && GOBIN="$tmp/bin" GOFLAGS=-buildvcs=false CGO_ENABLED=0 \
    go install "github.com/minio/minio@$MINIO_VERSION")
  mkdir -p "$dir"
  mv "$tmp/bin/minio" "$dir/minio.new" && mv "$dir/minio.new" "$dir/minio"
  rm -rf "$tmp"
fi
export WEIR_MINIO="$dir/minio"
echo "tools: WEIR_MINIO=$WEIR_MINIO" >&2
