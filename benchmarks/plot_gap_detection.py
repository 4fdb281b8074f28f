"""Gap detection's precision and recall against its cost (generated tokens), as a PNG.

    python benchmarks/plot_gap_detection.py --json outputs/gap_detection.json --out docs/gap_detection.png
    python benchmarks/plot_gap_detection.py --table docs/study.md --out docs/gap_detection.png

Reads either the JSON `benchmarks/gap_detection.py` writes or the published Markdown table of its
rows (the one in `docs/study.md`, section 2), so the figure can be redrawn from the numbers a page shows.
"""

from __future__ import annotations

import argparse
import json
import re
import sys


def from_json(path: str) -> list[dict]:
    with open(path) as f:
        results = json.load(f)["results"]
    return [
        {
            "setting": r["setting"],
            "precision": r["precision"],
            "recall": r["recall"],
            "tokens": r["tokens"],
        }
        for r in results
    ]


def from_table(path: str) -> list[dict]:
    """Rows of the first Markdown table whose header starts with `| setting | precision`."""
    rows, inside = [], False
    for line in open(path).read().splitlines():
        if line.startswith("| setting | precision"):
            inside = True
            continue
        if inside and line.startswith("|---"):
            continue
        if inside and not line.startswith("|"):
            break
        if inside:
            cells = [c.strip() for c in line.strip("|").split("|")]
            number = re.compile(r"^([\d.]+)")
            rows.append(
                {
                    "setting": cells[0],
                    "precision": float(number.match(cells[1]).group(1)),
                    "recall": float(number.match(cells[2]).group(1)),
                    "tokens": int(cells[6].replace(",", "")),
                }
            )
    if not rows:
        raise SystemExit(f"no gap-detection table in {path}")
    return rows


def plot(rows: list[dict], out: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.2), dpi=120)
    tokens = [r["tokens"] / 1000 for r in rows]
    ax.scatter(tokens, [r["precision"] for r in rows], marker="o", color="#2563eb", label="precision")
    ax.scatter(tokens, [r["recall"] for r in rows], marker="s", color="#d97706", label="recall")
    for r, x in zip(rows, tokens):
        ax.annotate(r["setting"], (x, r["precision"]), fontsize=6, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("generated tokens (thousands), 100 problems")
    ax.set_ylabel("exact-step precision / recall")
    ax.set_ylim(0.7, 1.0)
    ax.set_title("Gap detection against the planted truth vs cost (planted-gap task)", fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--json", help="the JSON benchmarks/gap_detection.py wrote")
    source.add_argument("--table", help="a Markdown page holding its table")
    parser.add_argument("--out", default="docs/gap_detection.png")
    args = parser.parse_args(argv)
    rows = from_json(args.json) if args.json else from_table(args.table)
    plot(rows, args.out)
    print(f"wrote {args.out} ({len(rows)} settings)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
