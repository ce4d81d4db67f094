"""scrub_tree looks for every secret form once over all the strings of a decoded body (joined
by NUL) instead of once per string: on random trees, with forms at string edges, inside keys,
split across two neighbouring strings and holding a NUL, it masks exactly what the
per-string regex masks, and returns the same object when nothing matched."""

from __future__ import annotations

import random

from reconciler.core.secrets import MASK, Scrubber


def _per_string(s: Scrubber, data):
    """The reference: every string (keys too) scrubbed by the regex on its own."""
    if isinstance(data, str):
        return s.scrub(data)
    if isinstance(data, dict):
        return {_per_string(s, k): _per_string(s, v) for k, v in data.items()}
    if isinstance(data, list):
        return [_per_string(s, v) for v in data]
    return data


def _tree(rng: random.Random, words: list[str], depth: int = 0):
    kind = rng.random()
    if depth > 3 or kind < 0.4:
        return rng.choice([rng.choice(words), "".join(rng.choices(words, k=3)), 7, None, True])
    if kind < 0.7:
        return [_tree(rng, words, depth + 1) for _ in range(rng.randint(0, 4))]
    return {rng.choice(words) + str(i): _tree(rng, words, depth + 1)
            for i in range(rng.randint(0, 4))}


def test_scrub_tree_masks_what_the_per_string_regex_masks():
    plain, nul = Scrubber(), Scrubber()
    plain.add("hunter2-secret")
    nul.add("hunter2-secret")
    nul.add("a\0b-nul-secret")           # a form holding a NUL matches across two strings
    words = ["hunter2-secret", "hunter2-", "secret", "plain", "x", "a", "b-nul-secret",
             "a\0b-nul-secret", "", "é"]
    rng = random.Random(14)
    hits = 0
    for _ in range(3000):
        data = _tree(rng, words)
        for s in (plain, nul):
            want = _per_string(s, data)
            got = s.scrub_tree(data)
            assert got == want, data
            if want != data:
                hits += 1
                assert MASK in repr(got)
            elif s is plain:
                assert got is data           # nothing matched: the same object, no copy
    assert hits > 300
    # split across two neighbouring strings: no form there, nothing masked
    data = ["hunter2-", "secret", {"hunter2-": "secret"}]
    assert plain.scrub_tree(data) is data
    assert nul.scrub_tree(["a", "b-nul-secret"]) == ["a", "b-nul-secret"]
