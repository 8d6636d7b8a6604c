"""No pickle anywhere: weights through safetensors only, no remote code, untrusted XML via defusedxml."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [p for d in ("vfmstudio", "plugins", "examples") for p in (ROOT / d).rglob("*.py")]

FORBIDDEN = {
    r"\btorch\.load\s*\(": "torch.load unpickles arbitrary objects; use safetensors",
    r"^\s*import\s+pickle\b|^\s*from\s+pickle\s+import|\bpickle\.loads?\s*\(": "pickle executes code from files",
    r"\bcloudpickle\b|\bdill\b": "pickle variants execute code from files",
    r"trust_remote_code\s*=\s*True": "remote code is never trusted",
    r"allow_pickle\s*=\s*True": "numpy pickles execute code from files",
    # Building XML with ElementTree is fine; parsing must go through defusedxml.
    r"(?<![\w.])(ET|ElementTree)\.(parse|fromstring|iterparse|XML|XMLParser)\s*\(|xml\.dom\.minidom|\blxml\b":
        "parse XML with defusedxml",
    r"(?<![.\w])eval\s*\(|(?<![.\w])exec\s*\(": "no eval/exec of data",
}


def test_sources_are_found():
    assert len(SOURCES) > 20


def test_no_unsafe_deserialisation_in_the_code():
    problems = []
    for path in SOURCES:
        text = path.read_text(encoding="utf-8")
        for pattern, why in FORBIDDEN.items():
            for match in re.finditer(pattern, text, flags=re.MULTILINE):
                line = text.count("\n", 0, match.start()) + 1
                problems.append(f"{path.relative_to(ROOT)}:{line}: {why}")
    assert not problems, "\n".join(problems)
