"""What a study writes: `results.json`, a Markdown table, a plot, and a model-card section."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from .config import CONDITIONS
from .harness import BASE

LABELS = {
    BASE: "student before SFT",
    "static": "static SFT (expert data)",
    "dart": "DART-adapted SFT",
    "pass_rate": "pass-rate filtering",
    "rft": "RFT (own verified samples)",
    "hint_fixed": "fixed hint (first p of steps) + own continuation",
    "hint_minimal": "minimal hint (shortest prefix with a success)",
    "iterative": "iterative DART",
}


def _ci(entry: Mapping[str, float]) -> str:
    return f"{entry['mean']:.3f} [{entry['low']:.3f}, {entry['high']:.3f}]"


def _diff(entry: Mapping[str, float]) -> str:
    return f"{entry['mean']:+.3f} [{entry['low']:+.3f}, {entry['high']:+.3f}]"


def results_table(results: Mapping[str, Any]) -> str:
    """One row per condition: pass@k with 95% intervals, difference to static SFT, rows and cost."""
    summary = results["summary"]
    ks = results["config"]["ks"]
    header = ["condition", "train rows"] + [f"pass@{k} [95% CI]" for k in ks]
    header += [f"pass@{ks[0]} − static [95% CI]", "generated tokens", "generation s", "training s"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for condition in [BASE, *CONDITIONS]:
        if condition not in summary:
            continue
        e = summary[condition]
        diff = e.get(f"pass@{ks[0]}_minus_static")
        cells = [LABELS[condition], f"{e['train_rows']:.0f}"] + [_ci(e[f"pass@{k}"]) for k in ks]
        cells += [
            _diff(diff) if diff else "—",
            f"{e['gen_tokens']:,.0f}",
            f"{e['gen_seconds']:.0f}",
            f"{e['train_seconds']:.0f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    dart = summary.get("dart", {})
    pairs = [c for c in [BASE, *CONDITIONS] if f"pass@{ks[0]}_minus_{c}" in dart]
    if pairs:
        lines += ["", f"| paired difference | pass@{ks[0]} [95% CI] |", "|---|---|"]
        lines += [f"| DART − {LABELS[c]} | {_diff(dart[f'pass@{ks[0]}_minus_{c}'])} |" for c in pairs]
    for name, sub in results.get("subsets", {}).items():
        lines += ["", subset_table(name, sub, ks)]
    return "\n".join(lines)


def subset_table(name: str, summary: Mapping[str, Any], ks: list[int]) -> str:
    """One subset of held-out problems (skill or plain): pass@k, paired differences to DART and to the
    untrained student, the share of samples that write the teaching step exactly ("states the quantity")
    and that open with a non-operation line ending on the right number ("states the number"), and cost."""
    header = ["condition"] + [f"{name} pass@{k} [95% CI]" for k in ks]
    header += [f"pass@{ks[0]} − DART", f"pass@{ks[0]} − untrained", "states the quantity", "states the number"]
    header += ["generated tokens"]
    lines = [f"**{name} problems**", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for condition in [BASE, *CONDITIONS]:
        if condition not in summary:
            continue
        e = summary[condition]
        vs_dart = e.get(f"pass@{ks[0]}_minus_dart")
        if condition == "dart":
            vs_dart = None
        vs_base = e.get(f"pass@{ks[0]}_minus_{BASE}")
        stated, number = e.get("states_quantity"), e.get("states_number")
        cells = [LABELS[condition]] + [_ci(e[f"pass@{k}"]) for k in ks]
        cells += [
            _diff(vs_dart) if vs_dart else "—",
            _diff(vs_base) if vs_base else "—",
            "—" if stated is None or name != "skill" else f"{stated:.2f}",
            "—" if number is None or name != "skill" else f"{number:.2f}",
            f"{e['gen_tokens']:,.0f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def card_section(results: Mapping[str, Any]) -> str:
    """A Markdown section for a model or dataset card."""
    cfg = results["config"]
    seeds = len(results.get("seeds_done", cfg["seeds"]))
    return (
        "## DART study\n\n"
        f"Student `{os.path.basename(str(results['student']).rstrip('/'))}` on `{results['task']}`: "
        f"{results['n_train']} training problems, {results['n_eval']} held-out problems, {seeds} seeds, "
        f"{cfg['eval_samples']} samples per held-out problem at temperature {cfg['temperature']}. Every condition is "
        f"trained with `DartTrainer` under the same hyper-parameters (lr {cfg['learning_rate']}, "
        f"{cfg['num_train_epochs']} epochs, batch {cfg['per_device_train_batch_size']}). Intervals: 95% bootstrap over "
        "seeds and problems; differences are paired.\n\n"
        f"{results_table(results)}\n"
    )


def _plot(results: Mapping[str, Any], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = results["config"]["ks"][0]
    panels = [("all held-out problems", results["summary"])]
    panels += [(f"{name} problems", sub) for name, sub in results.get("subsets", {}).items()]
    names = [c for c in [BASE, *CONDITIONS] if c in results["summary"]]
    colors = ["#9ca3af", "#6b7280", "#2563eb", "#d97706", "#059669", "#a855f7", "#db2777", "#1e3a8a"]
    color = {c: colors[i % len(colors)] for i, c in enumerate([BASE, *CONDITIONS])}
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 + 3.4 * len(panels), 4.0), dpi=120, squeeze=False)
    for ax, (title, summary) in zip(axes[0], panels):
        means = [summary[c][f"pass@{k}"]["mean"] for c in names]
        errors = [
            [m - summary[c][f"pass@{k}"]["low"] for c, m in zip(names, means)],
            [summary[c][f"pass@{k}"]["high"] - m for c, m in zip(names, means)],
        ]
        ax.bar(range(len(names)), means, yerr=errors, capsize=3, color=[color[c] for c in names])
        ax.set_xticks(range(len(names)), [LABELS[c].split(" (")[0] for c in names], fontsize=7, rotation=35, ha="right")
        ax.set_ylabel(f"held-out pass@{k}")
        ax.set_ylim(0, 1)
        ax.set_title(title, fontsize=9)
        for i, c in enumerate(names):
            ax.text(i, 0.02, f"{summary[c]['gen_tokens'] / 1000:.0f}k", ha="center", fontsize=6, color="white")
    fig.suptitle(
        f"{results['task']}: {len(results.get('seeds_done', results['config']['seeds']))} seeds, 95% bootstrap intervals "
        "(bar labels: generated tokens)",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_study_outputs(results: dict[str, Any], out_dir: str) -> dict[str, str]:
    """Write `results.json`, `results.md`, `card_section.md` and `study.png`; return their paths."""
    os.makedirs(out_dir, exist_ok=True)
    paths = {
        name: os.path.join(out_dir, name) for name in ("results.json", "results.md", "study.png", "card_section.md")
    }
    with open(paths["results.json"], "w") as f:
        json.dump(results, f, indent=2, default=str)
    with open(paths["results.md"], "w") as f:
        done = results.get("seeds_done", results["config"]["seeds"])
        note = f"Partial: seeds {done} of {results['config']['seeds']} have run.\n\n" if results.get("partial") else ""
        f.write(f"# DART study: {results['task']}\n\n{note}{results_table(results)}\n")
    with open(paths["card_section.md"], "w") as f:
        f.write(card_section(results))
    _plot(results, paths["study.png"])
    return paths
