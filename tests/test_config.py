"""`DartConfig` refuses nonsense at construction, naming the field and what it allows."""

import json
import math
import re

import pytest

from dart_hf import DartConfig
from dart_hf.adapter import _config_fingerprint

NAN, INF = math.nan, math.inf


@pytest.mark.parametrize(
    "field, value, allowed",
    [
        ("n_sim", 2.5, "integer >= 1"),
        ("n_sim", 0, "integer >= 1"),
        ("n_sim", True, "integer >= 1"),
        ("n_sim", "4", "integer >= 1"),
        ("n_explore", -1, "integer >= 0"),
        ("n_explore", 1.0, "integer >= 0"),
        ("sim_round_size", 0, "integer >= 1"),
        ("max_new_tokens", 0, "integer >= 1"),
        ("max_new_tokens", NAN, "integer >= 1"),
        ("max_steps", 0, "integer >= 1 or None"),
        ("max_steps", 2.5, "integer >= 1 or None"),
        ("seed", 1.5, "integer"),
        ("seed", None, "integer"),
        ("temperature", NAN, "finite number >= 0"),
        ("temperature", INF, "finite number >= 0"),
        ("temperature", -0.1, "finite number >= 0"),
        ("temperature", "hot", "finite number >= 0"),
        ("top_p", NAN, "in (0, 1]"),
        ("top_p", 0.0, "in (0, 1]"),
        ("top_p", 1.5, "in (0, 1]"),
        ("gap_margin", NAN, "in (0, 1]"),
        ("gap_margin", INF, "in (0, 1]"),
        ("gap_margin", -0.5, "in (0, 1]"),
        ("gap_margin", 0.0, "in (0, 1]"),
        ("gap_threshold", NAN, "in (0, 1]"),
        ("gap_threshold", 1.5, "in (0, 1]"),
        ("gap_threshold", -1, "in (0, 1]"),
        ("verify_timeout", NAN, "finite number > 0"),
        ("verify_timeout", INF, "finite number > 0"),
        ("verify_timeout", 0, "finite number > 0"),
        ("verify_timeout", -5, "finite number > 0"),
        ("early_stop", "yes", "True or False"),
        ("adaptive_sampling", 1, "True or False"),
        ("answer_phrase_fallback", None, "True or False"),
        ("gap_rule", "median", "'drop', 'threshold' or a callable"),
        ("gap_rule", None, "'drop', 'threshold' or a callable"),
        ("selection", "best", "'logprob', 'shortest' or 'random'"),
        ("fallback", None, "'expert', 'drop' or 'backoff'"),
        ("splitter", "", "None, a non-empty regex or a callable"),
        ("splitter", "(unclosed", "not a valid regex"),
        ("splitter", r"\n*", "must not match the empty string"),
        ("splitter", 3, "None, a non-empty regex or a callable"),
        ("problem_column", "", "non-empty string"),
        ("solution_column", None, "non-empty string"),
        ("answer_column", 3, "non-empty string"),
        ("messages_column", "", "non-empty string"),
        ("steps_column", "", "non-empty string or None"),
        ("prompt_template", "no placeholder", "containing '{problem}'"),
        ("prompt_template", 5, "None or a string"),
        ("instruction", None, "string ('' for none)"),
        ("instruction", 3, "string ('' for none)"),
    ],
)
def test_nonsense_is_refused_with_field_and_range(field, value, allowed):
    with pytest.raises((ValueError, TypeError)) as err:
        DartConfig(**{field: value})
    message = str(err.value)
    assert message.startswith(f"DartConfig.{field}"), message
    assert allowed in message, message


def test_sensible_edge_values_are_accepted():
    DartConfig(temperature=0, top_p=1, gap_margin=1, gap_threshold=1, n_explore=0, max_steps=1, verify_timeout=0.01)
    DartConfig(gap_rule=lambda scores: None, splitter=lambda text: text.split("\n"), instruction="")
    DartConfig(splitter=r"(?=STEP)")  # a lookahead may match empty, but not everywhere
    DartConfig(n_sim=4, seed=-3, steps_column="steps", prompt_template="{problem}\n{prefix}")


def test_regex_splitter_is_compiled_once_and_stays_json_safe():
    config = DartConfig(splitter=r"\n-{3,}\n")
    assert isinstance(config.splitter, re.Pattern)
    assert json.loads(json.dumps(config.to_dict()))["splitter"] == r"\n-{3,}\n"
    # same fingerprint as the string form had, and as an equal compiled pattern has
    assert _config_fingerprint(config) == _config_fingerprint(DartConfig(splitter=re.compile(r"\n-{3,}\n")))
    assert json.loads(_config_fingerprint(config))["splitter"] == r"\n-{3,}\n"
    # flags that change the splitting are part of the identity
    multiline = DartConfig(splitter=re.compile(r"^-+$", re.MULTILINE))
    assert _config_fingerprint(multiline) != _config_fingerprint(DartConfig(splitter=r"^-+$"))
    json.dumps(multiline.to_dict())
