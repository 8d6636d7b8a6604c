"""Fixtures shared by plugin tests."""

from __future__ import annotations

import pytest

from vfmstudio.core.cache import ByteLRUCache
from vfmstudio.execution import Services


@pytest.fixture(scope="module")
def models():
    """One model cache per test module: each tiny model loads once."""
    return ByteLRUCache(4 << 30, name="models")


@pytest.fixture
def services(models):
    """The module's model cache with a fresh feature cache, so each test computes its own features."""
    return Services(models=models, features=ByteLRUCache(256 << 20, name="features"))
