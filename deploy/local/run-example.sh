#!/usr/bin/env bash
# Runs the word-count example on the local cluster and shows its result.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=data/output/word-count
rm -rf "$out"
echo
echo "$ bin/weir run examples/wordcount.yaml"
bin/weir run examples/wordcount.yaml
echo
echo "Output files (committed part files; in-progress files start with '.'):"
ls -l "$out"
echo
echo "Top words (the last running count of each word):"
cat "$out"/part-* |
	sed -nE 's/.*"word":"([^"]*)".*"count":([0-9]+).*/\2 \1/p' |
	sort -k2,2 -k1,1nr | awk '!seen[$2]++' | sort -k1,1nr -k2,2 | head -n 10
echo
echo "The cluster is still running: try 'bin/weir list', 'bin/weir run examples/keyed-counts.yaml'."
echo "Stop it with 'make stop'."
