#!/usr/bin/env bash
# Every command README.md shows runs (tests/launch/readme_commands.py: sandbox, stand-ins for
# real data and clusters, shrunk training), and its flag lists match the programs' --help.
set -u
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp README.md "$tmp/README.md"
scripts/readme_flags.sh "$tmp/README.md" || { echo "scripts/readme_flags.sh failed"; exit 1; }
diff -u README.md "$tmp/README.md" > "$tmp/diff" ||
  { head -30 "$tmp/diff"; echo "README's flag lists differ from --help: run scripts/readme_flags.sh"; exit 1; }
exec /usr/bin/python3 tests/launch/readme_commands.py README.md
