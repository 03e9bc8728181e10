"""Targets of the Hopper W8A8 issue against a `qlinear bench --csv` file: prints markdown tables.

    python3 bench/summarize_issue3.py bench/results/h200_bench_issue.csv
"""
import csv
import sys
from collections import defaultdict


def main():
    rows = list(csv.DictReader(open(sys.argv[1])))
    by = defaultdict(dict)
    for r in rows:
        by[(int(r["n"]), int(r["k"]), int(r["m"]))][(r["scheme"], r["kernel"])] = r
    shapes = sorted({(n, k) for n, k, _ in by})

    def best(case, scheme):
        cands = [r for (s, _), r in case.items() if s == scheme]
        return min(cands, key=lambda r: float(r["us"])) if cands else None

    print("| N x K | M | bf16 us | block FP8 best (kernel) | %floor | vs bf16 | per-channel FP8 best (kernel) | %floor | vs bf16 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n, k in shapes:
        for m in (1, 2, 4, 8, 16):
            case = by.get((n, k, m))
            if not case:
                continue
            bf = float(case[("bf16", "torch.mm")]["us"])
            cells = []
            for scheme in ("fp8_per_block", "fp8_per_channel"):
                r = best(case, scheme)
                cells += [f"{float(r['us']):.1f} ({r['kernel']})", f"{float(r['pct_of_floor']):.0f}%", f"{bf / float(r['us']):.2f}x"]
            print(f"| {n}x{k} | {m} | {bf:.1f} | " + " | ".join(cells) + " |")
    print()
    print("| N x K | bf16 us | block FP8 best (kernel) | vs bf16 | vs cuBLAS blockwise alone | per-channel FP8 best | vs bf16 | INT8 best | vs bf16 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n, k in shapes:
        case = by.get((n, k, 4096))
        if not case:
            continue
        bf = float(case[("bf16", "torch.mm")]["us"])
        blk, ch, i8 = best(case, "fp8_per_block"), best(case, "fp8_per_channel"), best(case, "int8_per_channel")
        ref = case.get(("fp8_blockwise_ref", "cublas (no act quant)"))
        vs_ref = f"{float(ref['us']) / float(blk['us']):.2f}x" if ref else "-"
        print(f"| {n}x{k} | {bf:.1f} | {float(blk['us']):.1f} ({blk['kernel']}) | {bf / float(blk['us']):.2f}x | {vs_ref} | "
              f"{float(ch['us']):.1f} ({ch['kernel']}) | {bf / float(ch['us']):.2f}x | {float(i8['us']):.1f} ({i8['kernel']}) | "
              f"{bf / float(i8['us']):.2f}x |")


if __name__ == "__main__":
    main()
