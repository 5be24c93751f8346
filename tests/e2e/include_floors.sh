#!/usr/bin/env bash
# The library's floors only point down: a file in src/<floor>/ or include/unet/<floor>/ may include
# headers of its own floor and of floors strictly below it, never of a floor at its level or above.
#   core 0 <- nn 1 <- io, log, parallel 2 <- data 3 <- infer 4 <- train 5 <- tune 6 <- cli 7 <- apps 8
# (README "Architecture" draws the same picture). Fails naming every upward or sideways include,
# and any folder that has no floor yet.
set -u
cd "$(dirname "$0")/../.."
declare -A LEVEL=([core]=0 [nn]=1 [io]=2 [log]=2 [parallel]=2 [data]=3 [infer]=4 [train]=5 [tune]=6 [cli]=7 [apps]=8)
status=0
for dir in src/* include/unet/*; do
  [ -d "$dir" ] || continue
  floor=$(basename "$dir")
  [ -n "${LEVEL[$floor]+x}" ] || { echo "FAIL: $dir has no floor in tests/e2e/include_floors.sh"; status=1; continue; }
  while IFS=: read -r file line text; do
    to=$(echo "$text" | sed -n 's#.*"unet/\([a-z_]*\)/.*#\1#p')
    [ -n "$to" ] || continue
    [ "$to" = "$floor" ] && continue
    if [ -z "${LEVEL[$to]+x}" ] || [ "${LEVEL[$to]}" -ge "${LEVEL[$floor]}" ]; then
      echo "FAIL: $file:$line ($floor, floor ${LEVEL[$floor]}) includes $to: $text"; status=1
    fi
  done < <(grep -rn '^#include "unet/' "$dir" --include='*.h' --include='*.cpp')
done
[ $status -eq 0 ] && echo "ok: every include points down"
exit $status
