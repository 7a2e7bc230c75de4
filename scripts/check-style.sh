#!/usr/bin/env bash
# Style gate run by CI: file-size limits and banned calls (house style, docs/design.md).
#  - no source file over 2,000 lines (soft limit 1,000: reported, not fatal)
#  - no sprintf, strcpy, strcat, atoi, atol, atof, gets anywhere in C/CUDA sources
#  - no exit( or abort( in library code (core/, cuda/, vulkan/), except the one
#    assert-failure path in core/err.c
set -uo pipefail
cd "$(dirname "$0")/.."
fail=0
files=$(git ls-files '*.c' '*.h' '*.cu' '*.cuh' '*.comp' '*.glsl' 2>/dev/null)
for f in $files; do
    n=$(wc -l < "$f")
    if [ "$n" -gt 2000 ]; then echo "style: $f has $n lines (hard limit 2000)"; fail=1
    elif [ "$n" -gt 1000 ]; then echo "style: note: $f has $n lines (soft limit 1000)"; fi
done
banned='\b(sprintf|vsprintf|strcpy|strcat|atoi|atol|atoll|atof|gets)\s*\('
if hits=$(grep -nE "$banned" $files | grep -vE '^\S+:[0-9]+:\s*(//|\*|/\*)'); then
    echo "style: banned calls (use snprintf, memcpy with a length, strtol/strtod):"; echo "$hits"; fail=1
fi
lib=$(printf '%s\n' $files | grep -E '^(core|cuda|vulkan)/' | grep -v '^core/err.c$')
if [ -n "$lib" ] && hits=$(grep -nE '\b(exit|abort|_Exit)\s*\(' $lib | grep -vE '^\S+:[0-9]+:\s*(//|\*|/\*)'); then
    echo "style: exit/abort in library code (return a status instead):"; echo "$hits"; fail=1
fi
[ $fail = 0 ] && echo "style: ok"
exit $fail
