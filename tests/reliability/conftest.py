"""Reliability fixtures: the hostile image corpus, written once per session."""

from __future__ import annotations

import pytest

from vfmstudio.testing.hostile import CASES, build_corpus


@pytest.fixture(scope="session")
def hostile_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    build_corpus(root)
    return root


def case_ids():
    return [c.name for c in CASES]
