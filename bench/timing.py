#!/usr/bin/env python3
"""Times several commands in one run, interleaved, and prints medians and ratios as markdown.

Each round runs every candidate once, in an order rotated from round to round, so that slow drift on
the machine (other work, thermal limits, cache state) falls on all candidates alike. A warm-up round
is run first and not counted. Wall-clock time is the headline; the CPU time (user + system, from the
kernel's accounting of the child) is shown beside it because it is less disturbed by other load.

    timing.py --rounds 11 --cmd 'validate=meshctl validate -f DIR -R -q' --cmd 'parse=parse_only DIR' \
              --ratio validate/parse

Every command must exit 0; a failure stops the measurement (a benchmark of a failing run is noise).
"""

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time


def run_once(argv):
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter_ns()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = (time.perf_counter_ns() - start) / 1e9
        code = os.waitstatus_to_exitcode(status)
        proc.returncode = code
        if code != 0:
            err.seek(0)
            sys.exit(f"`{shlex.join(argv)}` exited {code}:\n{err.read().decode(errors='replace')}")
    return wall, usage.ru_utime + usage.ru_stime


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=11)
    ap.add_argument("--warmup", type=int, default=1, help="uncounted rounds first")
    ap.add_argument("--cmd", action="append", required=True, metavar="NAME=COMMAND")
    ap.add_argument("--ratio", action="append", default=[], metavar="A/B", help="report A's time over B's")
    ap.add_argument("--title", default=None)
    ap.add_argument(
        "--display-replace", action="append", default=[], metavar="OLD=NEW",
        help="in the printed commands, write NEW for OLD (e.g. a temporary directory)",
    )
    args = ap.parse_args()

    names, argvs = [], {}
    for spec in args.cmd:
        name, _, command = spec.partition("=")
        if not command:
            ap.error(f"--cmd wants NAME=COMMAND, got {spec!r}")
        names.append(name)
        argvs[name] = shlex.split(command)
    ratios = []
    for spec in args.ratio:
        a, _, b = spec.partition("/")
        if a not in argvs or b not in argvs:
            ap.error(f"--ratio {spec!r} names an unknown candidate")
        ratios.append((a, b))

    walls = {n: [] for n in names}
    cpus = {n: [] for n in names}
    for r in range(args.warmup + args.rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            wall, cpu = run_once(argvs[name])
            if r >= args.warmup:
                walls[name].append(wall)
                cpus[name].append(cpu)
        print(f"round {r + 1 - args.warmup}/{args.rounds}" if r >= args.warmup else "warm-up", file=sys.stderr)

    replacements = [spec.partition("=")[::2] for spec in args.display_replace]

    def shown(argv):
        if len(argv) > 8:
            text = f"{shlex.join(argv[:4])} ...({len(argv) - 5} more)... {shlex.quote(argv[-1])}"
        else:
            text = shlex.join(argv)
        for old, new in replacements:
            text = text.replace(old, new)
        return text

    med = statistics.median
    if args.title:
        print(f"### {args.title}\n")
    print(f"Medians of {args.rounds} interleaved rounds (after {args.warmup} warm-up).\n")
    print("| candidate | command | wall median (s) | wall min (s) | CPU median (s) |")
    print("|---|---|---:|---:|---:|")
    for n in names:
        print(
            f"| {n} | `{shown(argvs[n])}` | {med(walls[n]):.3f} | {min(walls[n]):.3f} | {med(cpus[n]):.3f} |"
        )
    if ratios:
        print()
        print("| ratio | of wall medians | median of per-round wall ratios | of CPU medians |")
        print("|---|---:|---:|---:|")
        for a, b in ratios:
            per_round = med([x / y for x, y in zip(walls[a], walls[b])])
            print(
                f"| {a} / {b} | {med(walls[a]) / med(walls[b]):.2f}× | {per_round:.2f}× "
                f"| {med(cpus[a]) / med(cpus[b]):.2f}× |"
            )
    print()


if __name__ == "__main__":
    main()
