"""vfmstudio.settings: one declaration and one parser for every VFMSTUDIO_* variable."""

import re
from pathlib import Path

import pytest

from vfmstudio import settings
from vfmstudio.core import cache
from vfmstudio.engines import worker
from vfmstudio.execution import tool_timeout_s
from vfmstudio.ml import compiling
from vfmstudio.prefetch import env_enabled

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("word", ["1", "true", "TRUE", " yes ", "on"])
def test_every_bool_setting_reads_the_same_true_words(word):
    for name, setting in settings.SETTINGS.items():
        if setting.kind == "bool":
            assert settings.get(name, {name: word}) is True, name


@pytest.mark.parametrize("word", ["0", "false", "No", "off"])
def test_every_bool_setting_reads_the_same_false_words(word):
    for name, setting in settings.SETTINGS.items():
        if setting.kind == "bool":
            assert settings.get(name, {name: word}) is False, name


def test_a_word_that_is_neither_is_refused_naming_the_variable():
    with pytest.raises(settings.SettingError, match="VFMSTUDIO_TORCH_COMPILE='maybe' is not a yes/no value"):
        settings.get("VFMSTUDIO_TORCH_COMPILE", {"VFMSTUDIO_TORCH_COMPILE": "maybe"})


def test_unset_and_empty_give_the_default():
    for name, setting in settings.SETTINGS.items():
        assert settings.get(name, {}) == setting.default
        assert settings.get(name, {name: "  "}) == setting.default


@pytest.mark.parametrize(
    ("name", "raw", "reason"),
    [
        ("VFMSTUDIO_MODEL_CACHE_MB", "-1", "out of range (>= 0)"),
        ("VFMSTUDIO_MODEL_CACHE_MB", "lots", "is not a number (>= 0)"),
        ("VFMSTUDIO_FEATURE_CACHE_MB", "inf", "must be a finite number"),
        ("VFMSTUDIO_MAX_PIXELS", "2.5", "is not an integer (>= 1)"),
        ("VFMSTUDIO_MAX_PIXELS", "0", "out of range (>= 1)"),
        ("VFMSTUDIO_PLUGIN_DISCOVERY_TIMEOUT_S", "0", "out of range (> 0)"),
        ("VFMSTUDIO_TOOL_TIMEOUT_S", "nan", "must be a finite number"),
    ],
)
def test_numbers_outside_their_range_are_refused_with_one_line(name, raw, reason):
    with pytest.raises(settings.SettingError) as info:
        settings.get(name, {name: raw})
    message = str(info.value)
    assert message.startswith(f"{name}={raw!r}") and reason in message and "\n" not in message


def test_not_strict_logs_and_falls_back(caplog):
    assert settings.get("VFMSTUDIO_MAX_PIXELS", {"VFMSTUDIO_MAX_PIXELS": "lots"}, strict=False) == 200_000_000
    assert "VFMSTUDIO_MAX_PIXELS='lots'" in caplog.text


def test_numbers_lists_and_paths_parse():
    assert settings.get("VFMSTUDIO_MAX_PIXELS", {"VFMSTUDIO_MAX_PIXELS": "1_000"}) == 1000
    assert settings.get("VFMSTUDIO_DISABLED_PLUGINS", {"VFMSTUDIO_DISABLED_PLUGINS": " a, ,b "}) == ("a", "b")
    assert (
        settings.get("VFMSTUDIO_PALIGEMMA_VAE", {"VFMSTUDIO_PALIGEMMA_VAE": "~/v.npz"})
        == Path("~/v.npz").expanduser()
    )


def test_the_old_readers_go_through_the_one_parser(monkeypatch):
    # Each of these parsed its variable by hand before and disagreed on what "true" meant.
    monkeypatch.setenv("VFMSTUDIO_TORCH_COMPILE", "on")
    assert compiling.torch_compile_enabled() is True
    monkeypatch.setenv("VFMSTUDIO_PREFETCH", "no")
    assert env_enabled() is False
    monkeypatch.setenv("VFMSTUDIO_MODEL_CACHE_MB", "2")
    assert cache.model_cache_budget() == 2 * 1024 * 1024
    monkeypatch.setenv("VFMSTUDIO_BATCH_FEATURE_CACHE_MB", "x")
    with pytest.raises(ValueError, match="VFMSTUDIO_BATCH_FEATURE_CACHE_MB='x'"):
        worker.batch_feature_budget()
    monkeypatch.setenv("VFMSTUDIO_TOOL_TIMEOUT_S", "12")
    assert tool_timeout_s() == 12.0


def test_every_variable_the_code_reads_is_declared():
    used = set()
    for folder in ("vfmstudio", "plugins"):
        for path in (ROOT / folder).rglob("*.py"):
            used |= set(re.findall(r"\bVFMSTUDIO_[A-Z0-9_]*[A-Z0-9]\b", path.read_text(encoding="utf-8")))
    assert used - set(settings.SETTINGS) == set()


def test_readme_table_is_generated_from_the_declarations():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert settings.readme_with_table(readme) == readme, (
        "run: python -m vfmstudio.settings --update README.md"
    )
    for name in settings.SETTINGS:
        assert f"`{name}`" in readme


def test_update_rewrites_only_the_marked_section(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{settings.README_START}\nold table\n{settings.README_END}\noutro\n")
    assert settings.main(["--update", str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith(f"{settings.README_END}\noutro\n")
    assert "old table" not in text and "| `VFMSTUDIO_MAX_PIXELS` | int |" in text


def test_check_fails_on_a_stale_table(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text(f"{settings.README_START}\nold table\n{settings.README_END}\n")
    assert settings.main(["--check", str(readme)]) == 1
    assert "out of date" in capsys.readouterr().err
    settings.main(["--update", str(readme)])
    assert settings.main(["--check", str(readme)]) == 0


def test_a_choice_setting_takes_its_words_in_any_case_and_refuses_others():
    name = "VFMSTUDIO_PLUGIN_ISOLATION"
    assert settings.get(name, {name: " Always "}) == "always"
    assert settings.get(name, {}) == "auto"
    with pytest.raises(
        settings.SettingError, match="VFMSTUDIO_PLUGIN_ISOLATION must be one of auto, always, never"
    ):
        settings.get(name, {name: "sometimes"})
