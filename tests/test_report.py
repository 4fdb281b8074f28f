"""Stats, stepwise export, HTML report and output folder, on a hand-made adapted dataset.

Every number asserted here is computed by hand in the comments, so a change to the binning or the
counting shows up as a test failure, not as a silently different report.
"""

import html
import json
import math
import os
import re

import datasets
import pytest

from dart_hf.report import OUTPUT_NAMES, compute_stats, to_stepwise, write_outputs, write_report

NAN = float("nan")
INSTRUCTION = "\n\nPlease reason step by step, and put your final answer within \\boxed{}."


def make_row(problem, steps, scores, gap, action, *, student=None, tokens=0, seconds=0.0, error="", answer="3"):
    solution = "".join(steps)
    start = -1
    if action == "explore":
        prefix = "".join(steps[: gap - 1])
        solution, start = prefix + student, len(prefix)
    return {
        "problem": problem,
        "solution": "".join(steps),
        "answer": answer,
        "dart_steps": steps,
        "dart_step_success": scores,
        "dart_gap_step": gap,
        "dart_action": action,
        "dart_solution": solution,
        "dart_student_start": start,
        "dart_answer": answer,
        "dart_tokens_generated": tokens,
        "dart_seconds": seconds,
        "dart_selection": "logprob" if action == "explore" else "",
        "dart_error": error,
        "prompt": [{"role": "user", "content": problem + INSTRUCTION}],
        "completion": [{"role": "assistant", "content": solution}],
    }


STUDENT_TEXT = "So x < 4 & x > 2, i.e.\n\n<b>x = 3</b>; the answer is $\\boxed{3}$."

ROWS = [
    # 0 explore: T=3, gap at step 2, the student continues after step 1
    make_row(
        "Find x.",
        ["s1\n\n", "s2\n\n", "s3"],
        [0.25, 0.75, 0.0, 1.0],
        2,
        "explore",
        student=STUDENT_TEXT,
        tokens=100,
        seconds=2.0,
    ),
    # 1 imitate: T=4, no gap
    make_row(
        "Add 1+2.", ["a\n\n", "b\n\n", "c\n\n", "d"], [0.5, 0.5, 0.75, 1.0, 1.0], -1, "imitate", tokens=50, seconds=1.0
    ),
    # 2 fallback: T=2, gap at the last step
    make_row("Hard one.", ["x\n\n", "y"], [0.0, 0.75, 0.0], 2, "fallback", tokens=70, seconds=3.0),
    # 3 error: all NaN
    make_row("Broken.", ["whole"], [NAN, NAN], -1, "error", tokens=0, seconds=0.5, error="gold answer is empty"),
    # 4 imitate with a prefix that was not simulated (NaN in the middle)
    make_row("Half simulated.", ["p\n\n", "q"], [0.5, NAN, 1.0], -1, "imitate", tokens=30, seconds=1.5),
]


@pytest.fixture(scope="module")
def ds():
    return datasets.Dataset.from_list(ROWS)


# ------------------------------------------------------------------------------------------ stats
def test_stats_counts_and_cost(ds):
    stats = compute_stats(ds, config={"n_sim": 4, "gap_rule": len}, wall_seconds=10.0, student="tiny", source="unit")
    assert stats["n_examples"] == 5
    assert stats["actions"] == {"imitate": 2, "explore": 1, "fallback": 1, "error": 1}
    assert stats["usable"] == 4
    assert stats["tokens_generated"] == 250
    assert stats["wall_seconds"] == 10.0
    assert stats["tokens_per_second"] == pytest.approx(25.0)
    assert stats["cost"]["tokens_per_example"] == pytest.approx(50.0)
    assert stats["cost"]["seconds_per_example"] == pytest.approx(8.0 / 5)
    assert stats["mean_steps"] == pytest.approx((3 + 4 + 2 + 2) / 4)  # error row excluded
    assert stats["mean_f0"] == pytest.approx((0.25 + 0.5 + 0.0 + 0.5) / 4)
    assert stats["mean_fT"] == pytest.approx((1.0 + 1.0 + 0.0 + 1.0) / 4)
    assert stats["error_reasons"] == {"gold answer is empty": 1}
    assert stats["selection"] == {"logprob": 1}
    assert (stats["student"], stats["source"]) == ("tiny", "unit")
    assert stats["config"]["n_sim"] == 4 and isinstance(stats["config"]["gap_rule"], str)  # callable -> str
    json.dumps(stats, allow_nan=False)  # JSON-safe: no NaN anywhere


def test_stats_wall_time_defaults_to_sum_of_row_seconds(ds):
    stats = compute_stats(ds)
    assert stats["wall_seconds"] == pytest.approx(8.0)
    assert stats["tokens_per_second"] == pytest.approx(250 / 8.0)
    assert stats["config"] is None and stats["student"] is None


def test_stats_position_bins_and_gap_histogram(ds):
    stats = compute_stats(ds)
    # t/T rounded to the nearest quarter (halves up):
    #   row 0 (T=3): t=0->0, 1->0.25 (1/3), 2->0.75 (2/3), 3->1;  row 1 (T=4): exact quarters;
    #   row 2 (T=2): 0, 0.5, 1;  row 4 (T=2): 0, (0.5 NaN skipped), 1;  row 3 (error) skipped.
    expected = {
        "0": (0.25 + 0.5 + 0.0 + 0.5) / 4,
        "0.25": (0.75 + 0.5) / 2,
        "0.5": (0.75 + 0.75) / 2,
        "0.75": (0.0 + 1.0) / 2,
        "1": (1.0 + 1.0 + 0.0 + 1.0) / 4,
    }
    assert stats["mean_success_by_position"].keys() == expected.keys()
    for key, value in expected.items():
        assert stats["mean_success_by_position"][key] == pytest.approx(value), key
    assert stats["success_by_position_counts"] == {"0": 4, "0.25": 2, "0.5": 2, "0.75": 2, "1": 4}
    # gaps: row 0 at 2/3 -> (0.5, 0.75]; row 2 at 2/2 -> (0.75, 1]; rows 1 and 4 none; error not counted
    assert stats["gap_histogram"]["relative"] == {
        "(0, 0.25]": 0,
        "(0.25, 0.5]": 0,
        "(0.5, 0.75]": 1,
        "(0.75, 1]": 1,
        "none": 2,
    }
    assert stats["gap_histogram"]["absolute"] == {"2": 2, "none": 2}


def test_stats_all_actions_present_and_nan_is_null():
    only_errors = datasets.Dataset.from_list([ROWS[3], ROWS[3]])
    stats = compute_stats(only_errors, wall_seconds=0.0)
    assert stats["actions"] == {"imitate": 0, "explore": 0, "fallback": 0, "error": 2}
    assert stats["usable"] == 0
    assert stats["tokens_per_second"] is None  # no division by zero
    assert stats["mean_success_by_position"] == {"0": None, "0.25": None, "0.5": None, "0.75": None, "1": None}
    assert stats["mean_steps"] is None
    json.dumps(stats, allow_nan=False)


def test_stats_and_report_count_math_verify_timeouts(tmp_path):
    rows = [dict(r, dart_verify_timeouts=k) for r, k in zip(ROWS, [0, 3, 0, 1, 2])]
    stats = compute_stats(datasets.Dataset.from_list(rows))
    assert stats["verify_timeouts"] == {"comparisons": 6, "rows": 3}
    write_report(datasets.Dataset.from_list(rows), stats, str(tmp_path / "r.html"))
    page = open(tmp_path / "r.html", encoding="utf-8").read()
    row = re.search(r"<th>math-verify timeouts</th><td[^>]*>(.*?)</td>", page)
    assert row and "6 comparisons in 3 rows" in row.group(1), row
    # data adapted before the column existed: unknown, not zero
    assert compute_stats(datasets.Dataset.from_list(ROWS))["verify_timeouts"] is None


def test_stats_rejects_a_dataset_that_was_not_adapted():
    with pytest.raises(ValueError, match="DartAdapter"):
        compute_stats(datasets.Dataset.from_dict({"problem": ["p"], "solution": ["s"]}))


# ------------------------------------------------------------------------------------------ stepwise
def test_stepwise_labels_follow_the_threshold(ds):
    sw = to_stepwise(ds)
    assert sw.column_names == ["prompt", "completions", "labels"]
    assert sw.features["labels"].feature.dtype == "bool"
    # error row 3 and NaN row 4 skipped
    assert sw["prompt"] == ["Find x." + INSTRUCTION, "Add 1+2." + INSTRUCTION, "Hard one." + INSTRUCTION]
    assert sw["completions"] == [["s1", "s2", "s3"], ["a", "b", "c", "d"], ["x", "y"]]
    assert sw["labels"] == [[True, False, True], [True, True, True, True], [True, False]]  # f_k >= 0.5
    assert to_stepwise(ds, threshold=0.8)["labels"][1] == [False, False, True, True]
    for row in sw:  # what TRL's PRM trainer zips with strict=True
        assert len(row["completions"]) == len(row["labels"])


def test_stepwise_of_only_errors_is_empty_but_typed():
    sw = to_stepwise(datasets.Dataset.from_list([ROWS[3]]))
    assert len(sw) == 0 and sw.column_names == ["prompt", "completions", "labels"]


# ------------------------------------------------------------------------------------------ report
def _external_refs(page):
    return re.findall(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", page, flags=re.IGNORECASE) + re.findall(
        r"@import|url\(\s*['\"]?(?:https?:)?//", page, flags=re.IGNORECASE
    )


def test_report_is_self_contained_and_highlights_the_student_part(ds, tmp_path):
    stats = compute_stats(ds, wall_seconds=10.0, student="tiny", source="unit")
    path = tmp_path / "sub" / "report.html"
    write_report(ds, stats, str(path))
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert page.count('<img src="data:image/png;base64,') == 3
    assert not _external_refs(page)
    assert "<script" not in page and "<link" not in page
    # the student's text is escaped (no raw <b> from the row) and highlighted exactly
    spans = re.findall(r"<span class='student'>(.*?)</span>", page, flags=re.DOTALL)
    assert len(spans) == 1
    row = ROWS[0]
    assert html.unescape(spans[0]) == row["dart_solution"][row["dart_student_start"] :] == STUDENT_TEXT
    assert "<b>x = 3</b>" not in page
    # explore first, then the others; f_t explained; the gap step marked
    assert page.index("Example #0") < page.index("Example #2") < page.index("Example #1")
    assert "f<sub>t</sub>" in page and "data-step='2'" in page and "step gap" in page


@pytest.mark.parametrize("rows", [[ROWS[3]], [ROWS[1]], [ROWS[4], ROWS[3]]], ids=["all-error", "single-imitate", "nan"])
def test_report_edge_cases(rows, tmp_path):
    small = datasets.Dataset.from_list(rows)
    path = tmp_path / "report.html"
    write_report(small, compute_stats(small), str(path), max_examples=4)
    page = path.read_text(encoding="utf-8")
    assert page.count('<img src="data:image/png;base64,') == 3
    assert "<span class='student'>" not in page
    assert "No row was explored" in page


def test_report_of_an_empty_adapted_dataset(ds, tmp_path):
    empty = ds.select([])
    stats = compute_stats(empty)
    assert stats["n_examples"] == 0 and stats["tokens_per_second"] is None
    write_report(empty, stats, str(tmp_path / "report.html"))
    assert "The dataset is empty" in (tmp_path / "report.html").read_text(encoding="utf-8")
    assert len(to_stepwise(empty)) == 0


def test_real_adapter_output_round_trip(tmp_path):
    """The columns DartAdapter really writes (scripted student) feed stats, stepwise and the report."""
    from dart_hf import DartAdapter, DartConfig

    from scripted import TEMPLATE, ScriptedBackend, expert

    T, F = True, False
    rows = [
        {"problem": "What is 6*7?", "solution": expert(3), "answer": "42"},
        {"problem": "broken", "solution": "", "answer": "42"},
    ]
    backend = ScriptedBackend(sim={0: [F] * 4, 1: [T] * 4, 2: [F] * 4, 3: [T] * 4})  # gap at step 2
    adapter = DartAdapter(backend, DartConfig(prompt_template=TEMPLATE), progress=False)
    out = datasets.Dataset.from_list(rows).map(adapter, batched=True, load_from_cache_file=False)
    assert out["dart_action"] == ["explore", "error"]

    stats = compute_stats(out, config=adapter.config.to_dict(), wall_seconds=1.0)
    assert stats["actions"] == {"imitate": 0, "explore": 1, "fallback": 0, "error": 1}
    assert stats["rollout_endings"] == {"answer": 16, "stop": 0, "length": 0}
    assert stats["tokens_generated"] == sum(out["dart_tokens_generated"]) > 0
    assert stats["gap_histogram"]["absolute"] == {"2": 1, "none": 0}
    sw = to_stepwise(out)
    assert sw["labels"] == [[True, False, True]]
    assert sw["completions"] == [[f"STEP {k} of the expert." for k in (1, 2, 3)]]

    paths = write_outputs(out, str(tmp_path / "run"), stats=stats)
    with open(paths["report.html"], encoding="utf-8") as f:
        page = f.read()
    (span,) = re.findall(r"<span class='student'>(.*?)</span>", page, flags=re.DOTALL)
    row = out[0]
    assert html.unescape(span) == row["dart_solution"][row["dart_student_start"] :]


# ------------------------------------------------------------------------------------------ outputs
def test_write_outputs_writes_the_five_names_consistently(ds, tmp_path):
    stats = compute_stats(ds, wall_seconds=10.0)
    out = tmp_path / "run"
    paths = write_outputs(ds, str(out), stats=stats)
    assert (
        set(paths)
        == set(OUTPUT_NAMES)
        == {"dataset", "dataset.parquet", "stepwise.parquet", "stats.json", "report.html"}
    )
    assert sorted(os.listdir(out)) == sorted(OUTPUT_NAMES)
    saved = json.loads((out / "stats.json").read_text())
    assert saved["n_examples"] == len(ds)
    assert sum(saved["actions"].values()) == len(ds)
    assert saved["tokens_generated"] == sum(ds["dart_tokens_generated"])
    reloaded = datasets.load_from_disk(paths["dataset"])
    assert reloaded["dart_action"] == ds["dart_action"]
    assert len(datasets.Dataset.from_parquet(paths["dataset.parquet"])) == len(ds)
    assert datasets.Dataset.from_parquet(paths["stepwise.parquet"])["labels"] == to_stepwise(ds)["labels"]
    assert math.isnan(reloaded["dart_step_success"][3][0])

    # a second run into the same folder, from the dataset saved there, replaces the outputs
    paths2 = write_outputs(reloaded, str(out), stats=compute_stats(reloaded))
    assert paths2 == paths and sorted(os.listdir(out)) == sorted(OUTPUT_NAMES)
    assert datasets.load_from_disk(paths["dataset"])["dart_solution"] == ds["dart_solution"]


def _foreign(path, name, ds):
    """Something of the user's at an output's name, as realistic as it gets (a dataset, Parquet, JSON, HTML)."""
    if name == "dataset":
        ds.save_to_disk(str(path))  # a saved dataset, but not one dart_hf wrote
        (path / "loader.py").write_text("print('mine')")
    elif name.endswith(".parquet"):
        ds.to_parquet(str(path))
    elif name == "stats.json":
        path.write_text(json.dumps({"n_examples": 3, "mine": True}))
    else:
        path.write_text("<!DOCTYPE html><html><head><meta charset='utf-8'></head><body>mine</body></html>")


def _snapshot(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("name", OUTPUT_NAMES)
def test_write_outputs_replaces_only_what_dart_hf_wrote(ds, tmp_path, name):
    from dart_hf.errors import UsageError

    out = tmp_path / "run"
    out.mkdir()
    _foreign(out / name, name, ds)
    (out / "notes.txt").write_text("not an output name: never touched")
    before = _snapshot(out)
    with pytest.raises(UsageError, match=rf"holds {re.escape(name)} not written by dart_hf"):
        write_outputs(ds, str(out), stats=compute_stats(ds))
    assert _snapshot(out) == before  # nothing written, nothing removed

    (out / name).rename(tmp_path / "moved")  # once it is out of the way, the outputs are written, and marked
    write_outputs(ds, str(out), stats=compute_stats(ds))
    assert sorted(os.listdir(out)) == sorted([*OUTPUT_NAMES, "notes.txt"])
    assert (out / "notes.txt").read_text() == "not an output name: never touched"


def test_outputs_are_written_atomically(ds, tmp_path, monkeypatch):
    """A full disk or a kill mid-write never leaves a truncated stats.json or report.html behind."""
    out = tmp_path / "run"
    write_outputs(ds, str(out), stats=compute_stats(ds))
    before = _snapshot(out)
    real_dump = json.dump

    def disk_full(obj, fh, **kwargs):
        if "stats.json" not in fh.name:
            return real_dump(obj, fh, **kwargs)
        fh.write(json.dumps(obj, **kwargs)[:20])
        fh.flush()
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(json, "dump", disk_full)
    with pytest.raises(OSError, match="No space left"):
        write_outputs(ds, str(out), stats=compute_stats(ds))
    monkeypatch.setattr(json, "dump", real_dump)
    assert json.loads((out / "stats.json").read_text())["n_examples"] == len(ds)  # the old one, whole
    assert sorted(os.listdir(out)) == sorted(OUTPUT_NAMES)  # no temporary file left

    real_replace = os.replace

    def killed_before_the_rename(src, dst):
        if str(dst).endswith("report.html"):
            raise KeyboardInterrupt
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", killed_before_the_rename)
    with pytest.raises(KeyboardInterrupt):
        write_report(ds, compute_stats(ds), str(out / "report.html"))
    assert (out / "report.html").read_bytes() == before["report.html"]
    assert sorted(os.listdir(out)) == sorted(OUTPUT_NAMES)


def test_report_warns_when_the_student_never_succeeds(tmp_path):
    hopeless = make_row("Too hard.", ["a\n\n", "b"], [0.0, 0.0, 0.0], -1, "imitate", tokens=10, seconds=1.0)
    small = datasets.Dataset.from_list([hopeless])
    write_report(small, compute_stats(small), str(tmp_path / "report.html"))
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "class='banner'" in page and "never reached the gold answer" in page


# ------------------------------------------------------------------------------------------ rollouts
def _rollouts(records):
    from dart_hf.schema import ROLLOUT_FIELDS

    return {name: [r[name] for r in records] for name in ROLLOUT_FIELDS}


def _record(t, j, text, correct, *, phase="sim", reason="answer", chosen=False, answer="3"):
    return dict(
        prefix_index=t,
        phase=phase,
        sample=j,
        text=text,
        answer=answer if reason != "length" else "",
        correct=correct,
        tokens=len(text),
        finish_reason=reason,
        logprob=-0.5,
        chosen=chosen,
    )


EVIL = "</pre><script>alert(1)</script> & <b>bold</b>"


def _with_rollouts(length_share):
    """Row 0 (explore, gap at step 2, student continues after step 1) with its 16 rollouts; row 3 (error) with none."""
    scores = ROWS[0]["dart_step_success"]
    records, n_length = [], round(16 * length_share)
    for t, f in enumerate(scores):
        for j in range(4):
            correct = j < round(4 * f)
            reason = "length" if not correct and n_length > 0 else "answer"
            n_length -= reason == "length"
            text = STUDENT_TEXT if (t, j) == (1, 0) else (EVIL if (t, j) == (0, 3) else f"try {t}.{j}")
            records.append(_record(t, j, text, correct, reason=reason, chosen=(t, j) == (1, 0)))
    records += [_record(1, 0, "explored but unused", False, phase="explore", reason="stop", answer="<i>7</i>")]
    rows = []
    for row, recs in ((ROWS[0], records), (ROWS[3], [])):
        ends = {k: sum(r["finish_reason"] == k for r in recs) for k in ("answer", "stop", "length")}
        rows.append({**row, "dart_rollouts": _rollouts(recs), "dart_rollout_endings": ends})
    return datasets.Dataset.from_list(rows), records


def test_stats_total_the_rollout_endings():
    ds2, records = _with_rollouts(0.25)
    stats = compute_stats(ds2)
    assert stats["rollout_endings"] == {"answer": 12, "stop": 1, "length": 4}
    assert stats["token_cap_share"] == pytest.approx(4 / 17)
    json.dumps(stats, allow_nan=False)
    # datasets adapted before the column existed: no numbers, no crash
    old = compute_stats(datasets.Dataset.from_list(ROWS))
    assert old["rollout_endings"] is None and old["token_cap_share"] is None


def test_report_lists_each_steps_rollouts_escaped_and_marks_the_chosen_one(tmp_path):
    ds2, records = _with_rollouts(0.0)
    path = tmp_path / "report.html"
    write_report(ds2, compute_stats(ds2), str(path))
    page = path.read_text(encoding="utf-8")
    # one collapsed <details> per prefix t = 0..3, plus one for the exploration from t = 1
    blocks = re.findall(r"<details class='rollouts' data-phase='(\w+)' data-t='(\d+)'>", page)
    assert blocks == [("sim", "0"), ("sim", "1"), ("sim", "2"), ("sim", "3"), ("explore", "1")]
    assert "<details class='rollouts' open" not in page
    assert "f<sub>1</sub> = 0.75 · 3 of 4 correct" in page
    # every rollout text is there, escaped
    assert "<script>alert" not in page and "<b>bold</b>" not in page and "<i>7</i>" not in page
    pattern = r"<div class='rollout [^']*'>.*?<pre class='text'>(.*?)</pre>"
    texts = [html.unescape(t) for t in re.findall(pattern, page, flags=re.DOTALL)]
    assert texts == [r["text"] for r in records]
    assert page.count("rollout ok chosen") + page.count("rollout bad chosen") == 1
    (chosen,) = re.findall(r"<div class='rollout ok chosen'>.*?<pre class='text'>(.*?)</pre>", page, flags=re.DOTALL)
    assert html.unescape(chosen) == STUDENT_TEXT
    assert "rollout endings" in page and "class='banner warnbanner'" not in page


def test_report_warns_when_many_rollouts_hit_the_token_cap(tmp_path):
    ds2, _ = _with_rollouts(0.25)  # 4 of 17 rollouts: 23.5%, below the 25% line
    write_report(ds2, compute_stats(ds2), str(tmp_path / "a.html"))
    assert "raise max_new_tokens" not in (tmp_path / "a.html").read_text(encoding="utf-8")
    ds3, _ = _with_rollouts(0.5)  # all 8 failed rollouts of 17 are cut: 47%
    stats = compute_stats(ds3)
    assert stats["token_cap_share"] == pytest.approx(8 / 17)
    write_report(ds3, stats, str(tmp_path / "b.html"))
    page = (tmp_path / "b.html").read_text(encoding="utf-8")
    assert "class='banner warnbanner'" in page
    assert "47% of the student's rollouts hit the token cap" in html.unescape(page)
    assert "raise max_new_tokens" in page and "8 hit the max_new_tokens cap (47%)" in page


def test_report_says_when_rollouts_were_not_kept(ds, tmp_path):
    write_report(ds, compute_stats(ds), str(tmp_path / "report.html"))
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "keep_rollouts=True" in page and "<details class='rollouts'" not in page


def test_stepwise_with_rollouts_adds_columns_only():
    ds2, records = _with_rollouts(0.0)
    plain = to_stepwise(ds2)
    sw = to_stepwise(ds2, include_rollouts=True)
    assert sw.column_names == [
        "prompt",
        "completions",
        "labels",
        "step_correct",
        "step_total",
        "step_rollouts",
        "step_rollout_correct",
    ]
    assert sw.select_columns(["prompt", "completions", "labels"]).to_list() == plain.to_list()
    # f = 0.25, 0.75, 0, 1 over 4 rollouts; steps 1..3 only (t = 0 is the problem alone, not a step)
    assert sw["step_correct"] == [[3, 0, 4]] and sw["step_total"] == [[4, 4, 4]]
    assert sw["step_rollouts"][0][0] == [STUDENT_TEXT, "try 1.1", "try 1.2", "try 1.3"]  # sim only, not exploration
    assert sw["step_rollout_correct"][0][1] == [False] * 4
    # rows without stored rollouts: counts from f_t x samples, no texts
    without = datasets.Dataset.from_list([{**ROWS[0], "dart_step_samples": [4, 4, 4, 4]}])
    sw2 = to_stepwise(without, include_rollouts=True)
    assert sw2["step_correct"] == [[3, 0, 4]] and sw2["step_rollouts"] == [[[], [], []]]
    assert to_stepwise(datasets.Dataset.from_list([ROWS[3]]), include_rollouts=True).column_names == sw.column_names


def test_report_escapes_html_from_the_data(tmp_path):
    """Texts come from datasets and models: the template engine escapes them (autoescape), none is trusted."""
    problem = "<script>alert('p')</script> Is 1 < 2 & 3 > 2?"
    row = make_row(problem, ["<b>one</b>\n\n", "two"], [0.5, 1.0, 1.0], -1, "imitate", answer="<i>3</i>")
    small = datasets.Dataset.from_list([row])
    stats = compute_stats(small, student="<img src=x onerror=alert(1)>", source="a & b", config={"seed": "<s>"})
    write_report(small, stats, str(tmp_path / "report.html"))
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "<script" not in page and "<b>one</b>" not in page and "<i>3</i>" not in page
    assert "<img src=x" not in page and "<s>" not in page
    assert "&lt;script&gt;alert(" in page
    (shown,) = re.findall(r"<pre class='text problem'>(.*?)</pre>", page, flags=re.DOTALL)
    assert html.unescape(shown) == problem + INSTRUCTION
    steps = re.findall(r"<span class='step' data-step='(\d)'>(.*?)</span>", page)
    assert [(k, html.unescape(s)) for k, s in steps] == [("1", "<b>one</b>"), ("2", "two")] * 2  # expert, adapted


def test_report_template_escapes_by_itself():
    """Escaping is the engine's job: the report's Jinja2 environment has autoescape on."""
    from dart_hf.report.html import TEMPLATE, environment

    env = environment()
    assert env.autoescape is True or env.autoescape(TEMPLATE)
    assert env.from_string("{{ x }}").render(x="<b>&</b>") == "&lt;b&gt;&amp;&lt;/b&gt;"
