"""Render the JSON written by bench_lottalora_accuracy.py as Markdown tables.

Run:  python benchmarks/bench_lottalora_report.py results1.json [results2.json ...]

The files of one protocol (dataset, epochs) are merged; full training is the reference.
Two shares are given for each method:

* ``% of full``: its mean test accuracy over full training's;
* ``% of gap closed``: how much of the gap between the frozen scaffold with only
  the head trained (r = 0) and full training the adapters close,
  ``(acc_r − acc_0) / (acc_full − acc_0)``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _share(value: float, low: float | None, high: float | None) -> str:
    if low is None or high is None or high == low:
        return ""
    return f"{100 * (value - low) / (high - low):.0f} %"


def table(files: list[Path]) -> str:
    runs = [json.loads(f.read_text()) for f in files]
    methods = [m for run in runs for m in run.get("methods", [])]
    lines = []
    if methods:
        full = next((m for m in methods if m["kind"] == "full"), None)
        frozen = next((m for m in methods if m["kind"] == "lora" and m.get("r") == 0), None)
        full_mean = None if full is None else full["mean"]
        frozen_mean = None if frozen is None else frozen["mean"]
        first = runs[0]
        lines.append(f"{first['dataset']}: {first.get('n_train', '?')} train (10 % of it for "
                     f"validation) / {first.get('n_test', '?')} test, {first['epochs']} epochs, "
                     f"lr grid {first.get('lr_grid')}, seeds {first.get('seeds')}; "
                     f"{first.get('seconds', 0) / 60:.0f} min")
        lines.append("")
        lines.append("| method | trainable | lr (val.) | test accuracy (mean ± std) | % of full "
                     "| % of gap closed |")
        lines.append("|---|---|---|---|---|---|")
        for m in sorted(methods, key=lambda m: (m["kind"] != "full", m.get("r", 0),
                                                 m.get("alpha") is not None)):
            edge = " (grid edge)" if m.get("lr_at_grid_edge") else ""
            share = "" if full_mean is None else f"{100 * m['mean'] / full_mean:.0f} %"
            closed = "" if m is frozen else _share(m["mean"], frozen_mean, full_mean)
            lines.append(f"| {m['name']} | {m['trainable']:,} | {m['lr']:g}{edge} | "
                         f"{m['mean']:.3f} ± {m['std']:.3f} | {share} | {closed} |")
    ablations = [a for run in runs for a in run.get("ablations", [])]
    if ablations:
        lines.append("")
        lines.append("| ablation | r | lr | test accuracy | median abs(β) |")
        lines.append("|---|---|---|---|---|")
        for a in ablations:
            beta = "" if a.get("median_abs_beta") is None else f"{a['median_abs_beta']:.3g}"
            lines.append(f"| {a['setting']} | {a['r']} | {a['lr']:g} | "
                         f"{a['mean']:.3f} ± {a['std']:.3f} | {beta} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table([Path(p) for p in sys.argv[1:]]))
