"""The report of an A/B run (bench/proxy-ab.sh, bench/route-ab.sh).

    python3 bench/ab_report.py RESULTS DUR CLK_TCK NOUN UNIT

RESULTS has one line per timed run: `A|B rate cpu-ticks` (rate per second over DUR seconds, the
proxy's CPU ticks over the run). NOUN names what is counted ("connections", "requests"), UNIT its short
form ("conn", "req"). Prints each round, then the medians and the A/B ratio of rates, both as the ratio
of medians and as the median of per-round ratios.
"""

import statistics as st
import sys


def main() -> None:
    path, dur, hz, noun, unit = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5]
    res = {"A": [], "B": []}
    for label, rate, ticks in (line.split() for line in open(path)):
        rate = float(rate)
        cpu_us = float(ticks) / hz * 1e6 / (rate * dur) if rate else float("nan")
        res[label].append((rate, cpu_us))
    print(f"| round | A {unit}/s | B {unit}/s | A/B | A CPU µs/{unit} | B CPU µs/{unit} |")
    print("|---:|---:|---:|---:|---:|---:|")
    for i, (a, b) in enumerate(zip(res["A"], res["B"]), 1):
        print(f"| {i} | {a[0]:,.0f} | {b[0]:,.0f} | {a[0] / b[0]:.3f} | {a[1]:.1f} | {b[1]:.1f} |")
    ratios = [a[0] / b[0] for a, b in zip(res["A"], res["B"])]
    cpu_ratios = [a[1] / b[1] for a, b in zip(res["A"], res["B"])]
    print()
    for label in "AB":
        rate = st.median(x[0] for x in res[label])
        cpu = st.median(x[1] for x in res[label])
        print(f"{label}: {rate:,.0f} {unit}/s, {cpu:.1f} µs CPU per {noun[:-1]} (medians)")
    med_a = st.median(x[0] for x in res["A"])
    med_b = st.median(x[0] for x in res["B"])
    print(f"A/B {noun}/s: {med_a / med_b:.3f} of medians, {st.median(ratios):.3f} median of per-round ratios")
    print(f"A/B CPU per {noun[:-1]}: {st.median(cpu_ratios):.3f} median of per-round ratios")


if __name__ == "__main__":
    main()
