"""CLI output on the example state is byte-identical to tests/golden/out/ (issue 13: the package
redesign must not change what users see). Regenerate with tests/golden/make_golden.py only when an
output change is intended, and review the diff."""

from __future__ import annotations

import pathlib
import sys

import pytest

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from cases import cases  # noqa: E402
from make_golden import build_repo, run_case  # noqa: E402


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return build_repo(tmp_path_factory.mktemp("golden"))


@pytest.mark.parametrize("name,argv", cases(), ids=[c[0] for c in cases()])
def test_output_is_unchanged(repo, name, argv):
    rc, stdout, stderr = run_case(repo, argv)
    got = f"exit {rc}\n--- stdout\n{stdout}--- stderr\n{stderr}"
    assert got == (HERE / "out" / name).read_text()
