#!/usr/bin/env bash
# Rewrites the flag lists in README.md from the programs' own --help, between the markers
#   <!-- BEGIN help: COMMAND -->  and  <!-- END help -->
# so the README shows every flag as the build has it. tests/e2e/readme_commands.sh fails when the
# README differs from what this script would write; after adding a flag, run it and commit.
#   scripts/readme_flags.sh [README]      (default README.md; needs the build)
set -euo pipefail
cd "$(dirname "$0")/.."
README=${1:-README.md}
/usr/bin/python3 - "$README" <<'PYEOF'
import re, subprocess, sys
path = sys.argv[1]
text = open(path, encoding="utf-8").read()
def block(m):
    command = m.group(1)
    out = subprocess.run(command, shell=True, capture_output=True, text=True, check=True).stdout
    out = "\n".join(line.rstrip() for line in out.strip("\n").splitlines())
    return f"<!-- BEGIN help: {command} -->\n```text\n{out}\n```\n<!-- END help -->"
new = re.sub(r"<!-- BEGIN help: (.*?) -->\n.*?<!-- END help -->", block, text, flags=re.S)
tmp = path + ".tmp"
open(tmp, "w", encoding="utf-8").write(new)
import os; os.replace(tmp, path)
PYEOF
