"""The tested examples of docs/recipes.md and docs/runbook.md, run as written (see
tests/doctest_md.py for the conventions): every `# state/...` snippet merged into a temp copy
of the example state repo, every shell command run, its output checked."""

from __future__ import annotations

import pytest

from doctest_md import REPO, examples, run_example

DOCS = ["docs/recipes.md", "docs/runbook.md"]
CASES = [(doc, ex) for doc in DOCS if (REPO / doc).exists() for ex in examples(REPO / doc)]


def test_the_docs_have_tested_examples():
    titles = {ex.title for doc, ex in CASES if doc == "docs/recipes.md"}
    for topic in ("Deployment pause", "Incident response", "Cost control", "Environment promotion",
                  "Multi-tenant"):
        assert any(t.startswith(topic) for t in titles), topic


@pytest.mark.parametrize("doc,example", CASES,
                         ids=[f"{d.split('/')[-1]}:{e.title[:40]}" for d, e in CASES])
def test_example(doc, example, tmp_path):
    run_example(example, tmp_path, doc)
