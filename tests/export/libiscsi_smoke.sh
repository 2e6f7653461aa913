#!/usr/bin/env bash
# Real-initiator smoke test (TESTING.md B1, reduced): libiscsi's tools
# against iscsi_test_server on 127.0.0.1 and a kernel-chosen port.
#   iscsi-inq / iscsi-ls, with and without CHAP, mutual CHAP, a wrong
#   secret, header digests, and iscsi-test-cu's iSCSI family (--dataloss)
#   against the real command set (--real).
# Usage: libiscsi_smoke.sh SERVER_BINARY. A missing tool fails loudly.
set -uo pipefail
server=$1
for tool in iscsi-inq iscsi-ls iscsi-test-cu; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool not installed (apt-get install libiscsi-bin)"; exit 1; }
done
iqn=iqn.2026-11.test.blockhaus:ram
fail=0
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; }
trap cleanup EXIT

# start ARGS... -> sets $port; each server is killed (by its pid) on exit.
start() {
  local out; out=$(mktemp)
  # The server exits at EOF on stdin: a FIFO this script holds open.
  local fifo; fifo=$(mktemp -u)
  mkfifo "$fifo"
  "$server" "$@" < "$fifo" > "$out" 2>/dev/null &
  pids+=("$!")
  exec {keep}>"$fifo"
  rm -f "$fifo"
  for _ in $(seq 50); do grep -q PORT "$out" && break; sleep 0.1; done
  port=$(awk '/PORT/{print $2}' "$out")
  rm -f "$out"
  [ -n "$port" ] || { echo "FAIL: server did not start"; exit 1; }
}
expect_ok() { local what=$1; shift; if timeout 60 "$@" >/dev/null 2>&1; then echo "ok: $what"; else echo "FAIL: $what"; fail=1; fi; }
expect_fail() { local what=$1; shift; if timeout 60 "$@" >/dev/null 2>&1; then echo "FAIL: $what"; fail=1; else echo "ok: $what"; fi; }

start
expect_ok "iscsi-inq" iscsi-inq "iscsi://127.0.0.1:$port/$iqn/0"
expect_ok "iscsi-ls" iscsi-ls -s "iscsi://127.0.0.1:$port"
expect_ok "iscsi-inq header digest" iscsi-inq "iscsi://127.0.0.1:$port/$iqn/0?header_digest=crc32c"

start --chap user secret-123456
expect_ok "CHAP" iscsi-inq "iscsi://user%secret-123456@127.0.0.1:$port/$iqn/0"
expect_fail "CHAP wrong secret" iscsi-inq "iscsi://user%wrong-secret-1@127.0.0.1:$port/$iqn/0"
expect_fail "CHAP required, none given" iscsi-inq "iscsi://127.0.0.1:$port/$iqn/0"
expect_ok "iscsi-ls with CHAP" iscsi-ls -s "iscsi://user%secret-123456@127.0.0.1:$port"

start --chap user secret-123456 --mutual tgtuser tgtsecret-9876
expect_ok "mutual CHAP" iscsi-inq "iscsi://user%secret-123456@127.0.0.1:$port/$iqn/0?target_user=tgtuser&target_password=tgtsecret-9876"
expect_fail "mutual CHAP, wrong target secret" iscsi-inq "iscsi://user%secret-123456@127.0.0.1:$port/$iqn/0?target_user=tgtuser&target_password=not-the-secret"

start --real
log=$(mktemp)
timeout 300 iscsi-test-cu -d --dataloss -t iSCSI "iscsi://127.0.0.1:$port/$iqn/0" > "$log" 2>&1
summary=$(grep -E '^ +tests ' "$log")
echo "iscsi-test-cu -t iSCSI: $summary"
# "tests  N  N  N  0  0": the fourth number is failures.
if [ "$(echo "$summary" | awk '{print $5}')" != "0" ]; then cat "$log"; fail=1; fi
rm -f "$log"
exit $fail
