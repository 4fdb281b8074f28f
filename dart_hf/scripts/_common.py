"""What every `dart-hf` command shares: YAML + flags through `TrlParser`, and one line on stderr for bad input."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Optional

from ..errors import UsageError, one_line, run_command


def parse(parser: Any, argv: Optional[Sequence[str]]) -> tuple:
    """`parser.parse_args_and_config(argv)`; a mistake in the YAML or the flags (unknown key, bad value) is a `UsageError`.

    Argparse's own errors (unknown flag, missing required flag) still print the usage and exit 2.
    """
    import yaml

    try:
        return parser.parse_args_and_config(list(argv) if argv is not None else None)
    except (ValueError, TypeError, OSError, yaml.YAMLError) as err:
        raise UsageError(one_line(err)) from err


def check_repo_id(repo_id: str, flag: str) -> None:
    """A Hub repo id huggingface_hub accepts ('namespace/name'), or a `UsageError` naming `flag`."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise UsageError(f"{flag} {repo_id!r} is not a valid Hub repo id: {one_line(err)}") from None


def check_hub_push(repo_id: str, flag: str) -> None:
    """Can this process push to `repo_id`? A valid id, the Hub not offline, a token the Hub accepts.

    Asked of huggingface_hub before any work, so that a push that cannot happen fails in seconds
    instead of after the whole run. The token itself never appears in a message.
    """
    import huggingface_hub
    from huggingface_hub import constants
    from huggingface_hub.errors import HfHubHTTPError

    check_repo_id(repo_id, flag)
    if constants.HF_HUB_OFFLINE:
        raise UsageError("--push_to_hub needs the Hub, but it is offline here (HF_HUB_OFFLINE is set)")
    token = huggingface_hub.get_token()
    if not token:
        raise UsageError("--push_to_hub needs a Hub token with write access: run `hf auth login` or set HF_TOKEN")
    try:
        huggingface_hub.HfApi().whoami(token=token)
    except HfHubHTTPError as err:
        status = getattr(getattr(err, "response", None), "status_code", None)
        if status in (401, 403):
            raise UsageError(f"--push_to_hub: the Hub refused the token (HTTP {status}); log in again") from None
        raise UsageError(f"--push_to_hub: cannot reach the Hub to check the token (HTTP {status})") from None
    except Exception as err:  # noqa: BLE001 - no network, DNS, proxy: the push would fail the same way later
        raise UsageError(
            f"--push_to_hub: cannot reach the Hub ({type(err).__name__}); push later or fix the network"
        ) from None


def run(prog: str, fn: Callable[[], Any], log_level: int = logging.INFO) -> int:
    """Call `fn` and return the exit status: 0, 1 (`RunError`) or 2 (`UsageError`, a missing package or file).

    A missing optional package (the offline student, CHAMP) or input file is the user's to fix, so it
    is reported like a bad flag; anything else is a bug and keeps its traceback.
    """
    logging.basicConfig(level=log_level, format="%(levelname)s %(name)s: %(message)s")

    def guarded() -> Any:
        try:
            return fn()
        except (ModuleNotFoundError, FileNotFoundError) as err:
            raise UsageError(str(err)) from err

    return run_command(prog, guarded)[1]
