import pytest


@pytest.fixture(autouse=True)
def _own_probe_cache(tmp_path, monkeypatch):
    """The third-party plugin probe cache lives in the user's cache folder: keep each test's apart."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
