#!/bin/sh
# check_exports.sh LIBNSFORK.SO: fails unless every symbol the shared client library exports is
# in the nsfork namespace (NSFORK_API), and it loads nothing the client must not need.
set -eu
lib=$1
symbols=$(nm -D --defined-only "$lib" | awk '{print $3}' | c++filt)
# The version script's own: a version node, when there is one, is an absolute symbol.
foreign=$(printf '%s\n' "$symbols" | grep -v -E '^((typeinfo (name )?for |vtable for )?nsfork::|NSFORK_)' || true)
if [ -n "$foreign" ]; then
    echo "$lib exports symbols outside the nsfork namespace:" >&2
    printf '%s\n' "$foreign" >&2
    exit 1
fi
if [ -z "$symbols" ]; then
    echo "$lib exports nothing" >&2
    exit 1
fi
needed=$(readelf -d "$lib" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
bad=$(printf '%s\n' "$needed" | grep -E 'fmt|spdlog|flatbuffers|boost|seccomp' || true)
if [ -n "$bad" ]; then
    echo "$lib needs libraries a client must not: $bad" >&2
    exit 1
fi
echo "$lib exports $(printf '%s\n' "$symbols" | wc -l) symbols, all nsfork::; needs $(printf "%s\n" "$needed" | tr "\n" " ")"
