#!/usr/bin/env bash
# Test tools that are not dependencies of weir, built once and cached outside
# the repository (never committed):
#   MinIO, the S3-compatible server that the s3:// storage tests start
#   (package pkg/internal/miniotest), built from source with go install:
#   about 10 minutes the first time on a 2-core machine, nothing after.
#   etcd, the server that the etcd HA tests start (package
#   pkg/internal/etcdtest), built from test/tools/etcd: a module of its own
#   around go.etcd.io/etcd/server/v3's etcdmain, so that weir's go.mod never
#   links the server. About 2 minutes the first time.
#
# Run it (it prints what it exports) or source it: it exports WEIR_MINIO and
# WEIR_ETCD, the paths the tests use. The versions must match
# miniotest.Version, etcdtest.Version and test/tools/etcd/go.mod.
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

ETCD_VERSION=v3.7.3
etcd_src="$(cd "$(dirname "${BASH_SOURCE[0]}")/../test/tools/etcd" && pwd)"
etcd_dir="$cache/etcd-$ETCD_VERSION"
if ! grep -q "go.etcd.io/etcd/server/v3 $ETCD_VERSION\$" "$etcd_src/go.mod"; then
  echo "tools: $etcd_src/go.mod does not require go.etcd.io/etcd/server/v3 $ETCD_VERSION" >&2
  exit 1
fi
if [ ! -x "$etcd_dir/etcd" ]; then
  echo "tools: building etcd $ETCD_VERSION into $etcd_dir (about 2 minutes, once)" >&2
  mkdir -p "$etcd_dir"
  (cd "$etcd_src" && GOWORK=off GOFLAGS=-buildvcs=false CGO_ENABLED=0 \
    go build -o "$etcd_dir/etcd.new" .)
  mv "$etcd_dir/etcd.new" "$etcd_dir/etcd"
fi
export WEIR_ETCD="$etcd_dir/etcd"
echo "tools: WEIR_ETCD=$WEIR_ETCD" >&2

# openssl: pkg/security's walk-through test runs deploy/tls/make-certs.sh,
# which docs/security.md tells operators to run; it skips without openssl.
if ! command -v openssl >/dev/null 2>&1; then
  echo "tools: installing openssl (Debian package)" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq && $sudo apt-get install -y -qq openssl >/dev/null
fi

# promtool and prometheus: test/e2e's TestMetricsScrape runs promtool check
# metrics on every daemon's scrape, and promtool check rules on the
# dashboard's PromQL (deploy/grafana/weir.json); the prometheus server is
# for the multi-host tests. Debian's package prometheus has both.
if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
  echo "tools: installing prometheus and promtool (Debian package prometheus)" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq && $sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
echo "tools: promtool $(promtool --version 2>&1 | head -1)" >&2
