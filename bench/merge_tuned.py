"""Merge decode-config tables (later files win per (GPU, kind, N, K, bucket)).

    python3 bench/merge_tuned.py OUT.json IN1.json [IN2.json ...]
"""
import json
import sys


def main():
    out, inputs = sys.argv[1], sys.argv[2:]
    merged: dict[str, dict[tuple, dict]] = {}
    for path in inputs:
        for device, entries in json.load(open(path)).items():
            for e in entries:
                merged.setdefault(device, {})[(e["kind"], e["n"], e["k"], e["bucket"])] = e
    with open(out, "w") as f:
        json.dump({d: list(es.values()) for d, es in merged.items()}, f, indent=1)


if __name__ == "__main__":
    main()
