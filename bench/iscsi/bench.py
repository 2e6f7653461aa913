#!/usr/bin/env python3
"""Helpers of bench/iscsi/run (stdlib only).

  bench.py freeport                      a TCP port free on 127.0.0.1 now
  bench.py fio FILE                      one fio JSON -> a TSV row of metrics
  bench.py fiocpu FILE                   one fio JSON -> fio's CPU seconds
  bench.py sniff PORT SECONDS READY      login keys seen on lo for PORT
  bench.py iperf FILE                    iperf3 JSON -> received bits/s
  bench.py sample PID DIR                RSS and load samples into DIR/rss.tsv
  bench.py report TSV [label=text ...]   the markdown tables of a run

The TSV the run writes has one row per fio run:
  phase case run target iops mbps p99_us bytes cpu_s status fio_cpu_s machine_busy
  disk_bytes
(cpu_s is the target's CPU; machine_busy the fraction of every CPU that was
busy while fio ran; disk_bytes what reached the work directory's device
while fio ran, -1 when unknown. Rows of older runs without the last three
still load.)
"""
import json
import os
import re
import select
import socket
import statistics
import struct
import sys
import time


def cmd_freeport(_args):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    print(s.getsockname()[1])
    s.close()


def cmd_fio(args):
    """iops, MB/s (1e6), p99 completion latency in us, bytes, errors.

    Reads and writes are summed (the mixed case); p99 is the worse of the
    two directions and, with fsync=N, of the SYNCHRONIZE CACHE latency.
    IOPS count reads and writes, not the SYNCHRONIZE CACHE commands."""
    text = open(args[0]).read()
    # fio prints notes before the JSON on some paths.
    doc = json.loads(text[text.index("{"):])
    iops = mbps = 0.0
    byts = 0
    p99 = 0.0
    errors = 0
    for job in doc["jobs"]:
        errors += job.get("error", 0)
        for d in ("read", "write"):
            s = job[d]
            if s["total_ios"] == 0:
                continue
            iops += s["iops"]
            mbps += s["bw_bytes"] / 1e6
            byts += s["io_bytes"]
            pct = s.get("clat_ns", {}).get("percentile", {})
            if "99.000000" in pct:
                p99 = max(p99, pct["99.000000"] / 1000.0)
        # fsync=N: SYNCHRONIZE CACHE latency, the part that matters there.
        sync = job.get("sync", {})
        if sync.get("total_ios", 0):
            pct = sync.get("lat_ns", {}).get("percentile", {})
            if "99.000000" in pct:
                p99 = max(p99, pct["99.000000"] / 1000.0)
    print(f"{iops:.1f}\t{mbps:.2f}\t{p99:.1f}\t{byts}\t{errors}")


def cmd_fiocpu(args):
    """CPU seconds (user + system) fio spent in its jobs."""
    text = open(args[0]).read()
    doc = json.loads(text[text.index("{"):])
    secs = sum((job["usr_cpu"] + job["sys_cpu"]) / 100.0 * job["job_runtime"] / 1000.0
               for job in doc["jobs"])
    print(f"{secs:.3f}")


# iSCSI keys whose negotiated value must match between the targets.
KEYS = ["MaxRecvDataSegmentLength", "FirstBurstLength", "MaxBurstLength",
        "ImmediateData", "InitialR2T", "MaxOutstandingR2T", "HeaderDigest",
        "DataDigest", "ErrorRecoveryLevel", "DataPDUInOrder",
        "DataSequenceInOrder", "MaxConnections"]
PAIR = re.compile(rb"([A-Za-z][A-Za-z0-9.\-]*)=([^\x00]*)\x00")


def cmd_sniff(args):
    """Captures the first login on 127.0.0.1:PORT from the wire (AF_PACKET
    on lo, root) and prints what each side sent and what was negotiated.

    RFC 7143 §13: MaxBurstLength/FirstBurstLength/MaxOutstandingR2T take the
    minimum, ImmediateData AND, InitialR2T OR, digests the target's pick;
    MaxRecvDataSegmentLength is declared by each side for what it receives.
    The target's answer is the negotiated value for every key but the
    declared one. Writes READY once capturing; stops at the target's final
    login response or after SECONDS."""
    port, seconds, ready = int(args[0]), float(args[1]), args[2]
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(0x0003))
    sock.bind(("lo", 0))
    open(ready, "w").close()
    sent = {"initiator": {}, "target": {}}
    deadline = time.monotonic() + seconds
    done = False
    while not done and time.monotonic() < deadline:
        r, _, _ = select.select([sock], [], [], 0.2)
        if not r:
            continue
        pkt, addr = sock.recvfrom(65535)
        if addr[2] == socket.PACKET_OUTGOING:  # lo shows each packet twice
            continue
        if len(pkt) < 14 + 20 or struct.unpack("!H", pkt[12:14])[0] != 0x0800:
            continue
        ip = pkt[14:]
        ihl = (ip[0] & 0x0F) * 4
        if ip[9] != 6:
            continue
        tcp = ip[ihl:]
        sport, dport = struct.unpack("!HH", tcp[:4])
        if port not in (sport, dport):
            continue
        payload = tcp[(tcp[12] >> 4) * 4:]
        if len(payload) < 48:
            continue
        opcode = payload[0] & 0x3F
        if opcode not in (0x03, 0x23):  # Login Request / Login Response
            continue
        side = "initiator" if dport == port else "target"
        dlen = int.from_bytes(payload[5:8], "big")
        for k, v in PAIR.findall(payload[48:48 + dlen]):
            # The initiator's first offer; the target's last answer.
            if side == "target" or k.decode() not in sent[side]:
                sent[side][k.decode()] = v.decode(errors="replace")
        # Target's final response: T bit set and NSG = full feature phase.
        if side == "target" and payload[1] & 0x80 and payload[1] & 0x03 == 3:
            done = True
    sock.close()
    init, tgt = sent["initiator"], sent["target"]
    print("key\tinitiator sent\ttarget sent\tnegotiated")
    for k in KEYS:
        i, t = init.get(k, "-"), tgt.get(k, "-")
        if k == "MaxRecvDataSegmentLength":
            neg = f"target receives {t}, initiator receives {i}"
        else:
            neg = t if t != "-" else f"{i} (not answered)"
        print(f"{k}\t{i}\t{t}\t{neg}")
    if not done:
        print("warning: no final login response seen", file=sys.stderr)
        sys.exit(1)


def read_status_kib(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cmd_sample(args):
    """Every 0.5 s (at most 4 h) appends "phase, VmRSS KiB, VmHWM KiB,
    1-minute load" to DIR/rss.tsv, the phase read from DIR/phase; stops
    when DIR/stop exists or PID is gone. One process for the whole run:
    a shell loop forked five programs a sample, ~5% of this machine's two
    CPUs, taken from whichever target was being measured."""
    pid, work = int(args[0]), args[1]
    with open(os.path.join(work, "rss.tsv"), "a") as out:
        for _ in range(28800):
            if os.path.exists(os.path.join(work, "stop")) or not os.path.exists(f"/proc/{pid}"):
                return
            try:
                with open(os.path.join(work, "phase")) as f:
                    phase = f.read().strip() or "-"
            except OSError:
                phase = "-"
            with open("/proc/loadavg") as f:
                load = f.read().split()[0]
            out.write(f"{phase}\t{read_status_kib(pid, 'VmRSS')}\t"
                      f"{read_status_kib(pid, 'VmHWM')}\t{load}\n")
            out.flush()
            time.sleep(0.5)


def cmd_iperf(args):
    doc = json.load(open(args[0]))
    print(f"{doc['end']['sum_received']['bits_per_second']:.0f}")


def optional_float(fields, i):
    """fields[i] as a float; nan when the row is older and lacks it."""
    try:
        return float(fields[i])
    except (IndexError, ValueError):
        return float("nan")


def load_rows(path):
    rows = []
    for line in open(path):
        f = line.rstrip("\n").split("\t")
        if len(f) < 10 or f[0] == "phase":
            continue
        rows.append(dict(phase=f[0], case=f[1], run=int(f[2]), target=f[3],
                         iops=float(f[4]), mbps=float(f[5]), p99=float(f[6]),
                         bytes=int(f[7]), cpu=float(f[8]), ok=f[9] == "ok",
                         client=optional_float(f, 10), busy=optional_float(f, 11),
                         disk=optional_float(f, 12)))
    return rows


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def fmt(x, digits=0):
    if x != x:  # nan
        return "-"
    if digits == 0:
        return f"{x:,.0f}"
    return f"{x:.{digits}f}"


def side_stats(rows):
    ok = [r for r in rows if r["ok"]]
    cpu_per_gb = [r["cpu"] / (r["bytes"] / 1e9) for r in ok if r["bytes"] > 0]
    client_per_gb = [r["client"] / (r["bytes"] / 1e9) for r in ok if r["bytes"] > 0]
    disk_per_gb = [r["disk"] / r["bytes"] for r in ok if r["bytes"] > 0 and r["disk"] >= 0]
    return dict(iops=med([r["iops"] for r in ok]), mbps=med([r["mbps"] for r in ok]),
                p99=med([r["p99"] for r in ok]) / 1000.0, cpu=med(cpu_per_gb),
                client=med(client_per_gb), busy=med([r["busy"] for r in ok]),
                disk=med(disk_per_gb), failed=len(rows) - len(ok))


def ratio_text(a_rows, b_rows):
    """Median of the per-pair ratios B/A (pair = same run number), and
    their range."""
    a = {r["run"]: r for r in a_rows if r["ok"] and r["iops"] > 0}
    b = {r["run"]: r for r in b_rows if r["ok"]}
    rs = sorted(b[k]["iops"] / a[k]["iops"] for k in a if k in b)
    if not rs:
        return "-"
    if len(rs) == 1:
        return f"**{rs[0]:.2f}x**"
    return f"**{med(rs):.2f}x** ({rs[0]:.2f}-{rs[-1]:.2f})"


def by_case(rows, phase, a, b):
    """(case, rows of target a, rows of target b) for each case of `phase`,
    in the order the cases ran."""
    cases = []
    for r in rows:
        if r["phase"] == phase and r["case"] not in cases:
            cases.append(r["case"])
    for c in cases:
        mine = [r for r in rows if r["phase"] == phase and r["case"] == c]
        yield (c, [r for r in mine if r["target"] == a], [r for r in mine if r["target"] == b])


def table(rows, phase, a, b, a_label, b_label):
    out = [f"| case | {a_label} IOPS | MB/s | p99 ms | CPU s/GB | "
           f"{b_label} IOPS | MB/s | p99 ms | CPU s/GB | {b_label}/{a_label} |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for c, ar, br in by_case(rows, phase, a, b):
        sa, sb = side_stats(ar), side_stats(br)
        note = ""
        if sa["failed"] or sb["failed"]:
            note = f" (failed runs: {a_label} {sa['failed']}, {b_label} {sb['failed']})"
        out.append(
            f"| {c} | {fmt(sa['iops'])} | {fmt(sa['mbps'])} | {fmt(sa['p99'], 2)} | "
            f"{fmt(sa['cpu'], 2)} | {fmt(sb['iops'])} | {fmt(sb['mbps'])} | "
            f"{fmt(sb['p99'], 2)} | {fmt(sb['cpu'], 2)} | {ratio_text(ar, br)}{note} |")
    return "\n".join(out)


def cpu_table(rows, phase, a, b, a_label, b_label):
    """Where the CPUs went: the target's and fio's CPU seconds per GB and
    how busy the machine was (every CPU = 100%). A case whose machine is
    near 100% is bounded by CPU, where the target's s/GB decides; one well
    below it waits (wake-ups, round trips, the device). The disk column is
    the bytes that reached the device while fio ran per byte fio moved: a
    target whose writes stay in the page cache through the run shows ~0."""
    out = [f"| case | {a_label} s/GB | fio s/GB | machine busy | disk GB/GB | "
           f"{b_label} s/GB | fio s/GB | machine busy | disk GB/GB |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for c, ar, br in by_case(rows, phase, a, b):
        sa, sb = side_stats(ar), side_stats(br)
        out.append(f"| {c} | {fmt(sa['cpu'], 2)} | {fmt(sa['client'], 2)} | "
                   f"{fmt(sa['busy'] * 100)}% | {fmt(sa['disk'], 2)} | {fmt(sb['cpu'], 2)} | "
                   f"{fmt(sb['client'], 2)} | {fmt(sb['busy'] * 100)}% | {fmt(sb['disk'], 2)} |")
    return "\n".join(out)


def cmd_report(args):
    rows = load_rows(args[0])
    labels = dict(a.split("=", 1) for a in args[1:])
    parts = []
    if any(r["phase"] == "main" for r in rows):
        parts.append(table(rows, "main", "tgt", "bh",
                           labels.get("tgt", "tgt"), labels.get("bh", "Blockhaus")))
        if any(r["client"] == r["client"] for r in rows if r["phase"] == "main"):
            parts.append("CPU per case (medians): the target's and fio's CPU seconds per "
                         "GB moved, how busy the whole machine was while fio ran "
                         "(100% = every CPU), and the bytes that reached the disk "
                         "while fio ran per byte moved:\n\n" +
                         cpu_table(rows, "main", "tgt", "bh", labels.get("tgt", "tgt"),
                                   labels.get("bh", "Blockhaus")))
    if any(r["phase"] == "snap" for r in rows):
        parts.append(table(rows, "snap", "none", "snap",
                           labels.get("none", "no snapshots"),
                           labels.get("snap", "with snapshots")))
    print("\n\n".join(parts))


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    cmd = {"freeport": cmd_freeport, "fio": cmd_fio, "fiocpu": cmd_fiocpu, "sniff": cmd_sniff,
           "iperf": cmd_iperf, "report": cmd_report, "sample": cmd_sample}.get(sys.argv[1])
    if cmd is None:
        sys.exit(__doc__)
    cmd(sys.argv[2:])


if __name__ == "__main__":
    main()
