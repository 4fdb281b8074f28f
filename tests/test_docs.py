"""The documentation builds strictly, and every public name carries a docstring."""

import importlib
import inspect
import os
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import dart_hf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_mkdocs_build_strict(tmp_path):
    pytest.importorskip("mkdocs", reason="install the docs extra: pip install -e .[docs]")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "site" / "index.html").exists()


def _public_objects():
    for info in pkgutil.walk_packages(dart_hf.__path__, "dart_hf."):
        if info.name.rsplit(".", 1)[-1].startswith("_"):
            continue
        module = importlib.import_module(info.name)
        yield info.name, module
        for name, obj in vars(module).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != info.name:
                continue
            if inspect.isclass(obj) or inspect.isfunction(obj):
                yield f"{info.name}.{name}", obj


def test_every_public_name_has_a_docstring():
    missing = [name for name, obj in _public_objects() if not (inspect.getdoc(obj) or "").strip()]
    assert not missing, f"public names without a docstring: {missing}"


def test_architecture_page_names_every_module():
    """docs/architecture.md is the map of the package: every file is on it, and it names no file that is gone."""
    package = Path(ROOT) / "dart_hf"
    files = {
        p.relative_to(package).as_posix()
        for p in package.rglob("*")
        if p.is_file() and (p.suffix == ".py" or p.parent.name == "templates") and "__pycache__" not in p.parts
    }
    page = (Path(ROOT) / "docs" / "architecture.md").read_text(encoding="utf-8")
    named = set(re.findall(r"^\| `([\w/.]+\.(?:py|j2|md))` \|", page, re.M))
    assert sorted(files - named) == [], "modules missing from docs/architecture.md"
    assert sorted(named - files) == [], "docs/architecture.md names files that do not exist"


def test_the_docs_write_max_samples_never_its_alias_n():
    """`--n` collides with torchrun's and accelerate's own options; the docs show `--max_samples` (issue 20)."""
    pages = [Path(ROOT, "README.md"), *Path(ROOT, "docs").glob("*.md"), *Path(ROOT, "dart_hf", "scripts").glob("*.py")]
    command = re.compile(r"(dart-hf (?:demo|adapt)|demo\.sh|recipes/adapt\.py)[^\n`]*?\s--n\s")
    found = [
        f"{page.name}: {m.group(0)}"
        for page in pages
        if page.name != "changelog.md"
        for m in command.finditer(page.read_text(encoding="utf-8"))
    ]
    assert not found, found
