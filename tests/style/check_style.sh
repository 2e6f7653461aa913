#!/usr/bin/env bash
# Enforces the rules of STYLE.md that a compiler does not:
#   * layering: core/ includes nothing of volume/, export/ or tools/;
#     volume/ nothing of export/ or tools/; export/ nothing of tools/;
#   * third-party adapters: rocksdb/ only under core/kv/, lz4.h and zstd.h
#     only in their core/compress/ adapter, openssl/ only in core/checksum/
#     and export/iscsi/chap.cc;
#   * no throw/try outside tools/;
#   * banned calls: atoi strcpy strcat sprintf strtok;
#   * internal headers are included only from their own directory tree.
# Prints every violation and exits 1 if there is any.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
fail=0
report() { echo "style: $1"; fail=1; }

src() { find "$@" -type f \( -name '*.h' -o -name '*.cc' \) 2>/dev/null; }

for f in $(src core); do
  grep -nE '#include "(volume|export|tools)/' "$f" | sed "s|^|$f: upward include: |" | while read -r l; do echo "style: $l"; done
  grep -qE '#include "(volume|export|tools)/' "$f" && fail=1
done
for f in $(src volume); do
  grep -qE '#include "(export|tools)/' "$f" && report "$f: volume/ includes export/ or tools/"
done
for f in $(src export); do
  grep -qE '#include "tools/' "$f" && report "$f: export/ includes tools/"
done
for f in $(src core volume export tools); do
  case "$f" in core/kv/*) ;; *) grep -qE '#include <rocksdb/' "$f" && report "$f: includes rocksdb outside core/kv/" ;; esac
  case "$f" in core/compress/lz4.cc) ;; *) grep -qE '#include <lz4' "$f" && report "$f: includes lz4 outside its adapter" ;; esac
  case "$f" in core/compress/zstd.cc) ;; *) grep -qE '#include <zstd' "$f" && report "$f: includes zstd outside its adapter" ;; esac
  case "$f" in core/checksum/*|export/iscsi/chap.cc) ;; *) grep -qE '#include <openssl/' "$f" && report "$f: includes openssl outside its adapter" ;; esac
done
for f in $(src core volume export); do
  # Strip // comments and string literals before looking for keywords.
  if sed -e 's|//.*$||' -e 's|"[^"]*"||g' "$f" | grep -qE '(^|[^A-Za-z_])(throw|try)([^A-Za-z_]|$)'; then
    report "$f: throw/try outside tools/"
  fi
done
for f in $(src core volume export tools tests bench); do
  if sed -e 's|//.*$||' -e 's|"[^"]*"||g' "$f" | grep -qE '(^|[^A-Za-z_:.>])(atoi|strcpy|strcat|sprintf|strtok)[[:space:]]*\('; then
    report "$f: uses a banned function (atoi strcpy strcat sprintf strtok)"
  fi
done
for f in $(src core volume export tools); do
  for inc in $(grep -oE '#include "[^"]*/internal/[^"]*"' "$f" | sed -E 's/#include "(.*)\/internal\/.*"/\1/'); do
    case "$f" in "$inc"/*) ;; *) case "$inc" in core/pool) case "$f" in core/*) continue ;; esac ;; esac
      report "$f: includes internal header of $inc" ;; esac
  done
done
if [ $fail -ne 0 ]; then echo "style: FAILED"; exit 1; fi
echo "style: ok"
