"""Render the JSON written by bench_lottalora_accuracy.py as Markdown tables.

Run:  python benchmarks/bench_lottalora_report.py results1.json [results2.json ...]
The files of one protocol (dataset, epochs) are merged; full training is the reference.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def table(files: list[Path]) -> str:
    runs = [json.loads(f.read_text()) for f in files]
    methods = [m for run in runs for m in run.get("methods", [])]
    lines = []
    if methods:
        full = next((m for m in methods if m["kind"] == "full"), None)
        first = runs[0]
        lines.append(f"{first['dataset']}: {first.get('n_train', '?')} train (10 % of it for "
                     f"validation) / {first.get('n_test', '?')} test, {first['epochs']} epochs, "
                     f"lr grid {first.get('lr_grid')}, seeds {first.get('seeds')}")
        lines.append("")
        lines.append("| method | trainable | lr (val.) | test accuracy | % of full |")
        lines.append("|---|---|---|---|---|")
        for m in sorted(methods, key=lambda m: (m["kind"] != "full", m.get("r", 0),
                                                 m.get("alpha") is not None)):
            share = "" if full is None else f"{100 * m['mean'] / full['mean']:.0f} %"
            lines.append(f"| {m['name']} | {m['trainable']:,} | {m['lr']:g} | "
                         f"{m['mean']:.3f} ± {m['std']:.3f} | {share} |")
    ablations = [a for run in runs for a in run.get("ablations", [])]
    if ablations:
        lines.append("")
        lines.append("| ablation | r | lr | test accuracy | median abs(β) |")
        lines.append("|---|---|---|---|---|")
        for a in ablations:
            lines.append(f"| {a['setting']} | {a['r']} | {a['lr']:g} | "
                         f"{a['mean']:.3f} ± {a['std']:.3f} | {a['median_abs_beta']:.3g} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table([Path(p) for p in sys.argv[1:]]))
