"""No pickle anywhere: weights through safetensors only, no remote code, untrusted XML via defusedxml,
no YAML/shell/archive footguns; model loading goes through one checked function."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = [p for d in ("vfmstudio", "plugins", "examples") for p in (ROOT / d).rglob("*.py")]
# Benchmarks and scripts run on users' machines too: the same rules apply to them.
SOURCES = SHIPPED + [p for d in ("benchmarks", "scripts") for p in (ROOT / d).rglob("*.py")]
LOADER = ROOT / "vfmstudio" / "ml" / "_loading.py"

FORBIDDEN = {
    r"\btorch\.load\s*\(": "torch.load unpickles arbitrary objects; use safetensors",
    r"^\s*import\s+pickle\b|^\s*from\s+pickle\s+import|\bpickle\.loads?\s*\(": "pickle executes code from files",
    r"\bcloudpickle\b|\bdill\b": "pickle variants execute code from files",
    r"trust_remote_code\s*=\s*True": "remote code is never trusted",
    r"allow_pickle\s*=\s*True": "numpy pickles execute code from files",
    # Building XML with ElementTree is fine; parsing must go through defusedxml.
    r"(?<![\w.])(ET|ElementTree)\.(parse|fromstring|iterparse|XML|XMLParser)\s*\(|xml\.dom\.minidom|\blxml\b": "parse XML with defusedxml",
    r"(?<![.\w])eval\s*\(|(?<![.\w])exec\s*\(": "no eval/exec of data",
    r"\bweights_only\s*=\s*False": "weights_only=False unpickles arbitrary objects",
    r"\btorch\.hub\.load\s*\(": "torch.hub.load runs code from the repository",
    r"\byaml\.(load|unsafe_load|full_load|load_all)\s*\(": "use yaml.safe_load: yaml.load builds arbitrary objects",
    r"\byaml\.safe_load(_all)?\s*\(": "read YAML with vfmstudio.core.yaml_safe.load_yaml (aliases bounded)",
    r"\bshell\s*=\s*True": "no shell: paths with spaces or quotes become commands",
    r"\.extractall\s*\(": "archive members may name '../' paths; extract member by member after checking",
    r"\bmarshal\.loads?\s*\(|\bshelve\b|\bjoblib\.load\s*\(|\bjsonpickle\b": "these unpickle or run code",
}


def test_sources_are_found():
    assert len(SHIPPED) > 20 and LOADER in SHIPPED


def test_no_unsafe_deserialisation_in_the_code():
    problems = []
    for path in SOURCES:
        text = path.read_text(encoding="utf-8")
        for pattern, why in FORBIDDEN.items():
            for match in re.finditer(pattern, text, flags=re.MULTILINE):
                line = text.count("\n", 0, match.start()) + 1
                problems.append(f"{path.relative_to(ROOT)}:{line}: {why}")
    assert not problems, "\n".join(problems)


def test_models_load_only_through_the_checked_loader():
    """``from_pretrained`` appears in shipped code only in ml/_loading.py, which passes
    use_safetensors=True, trust_remote_code=False and local_files_only=True."""
    callers = []
    for path in SHIPPED:
        if path == LOADER or "testing" in path.relative_to(ROOT).parts:  # testing builds tiny models locally
            continue
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"\.from_pretrained\s*\(", text):
            callers.append(f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, match.start()) + 1}")
    assert not callers, "load models with vfmstudio.ml._loading.load_pretrained/load_processor: " + ", ".join(
        callers
    )
    loader = LOADER.read_text(encoding="utf-8")
    start = loader.index("model_cls.from_pretrained(")
    depth, end = 0, start
    for end in range(start, len(loader)):  # up to the parenthesis closing the call
        depth += {"(": 1, ")": -1}.get(loader[end], 0)
        if loader[end] == ")" and depth == 0:
            break
    model_call = loader[start : end + 1]
    for required in ("use_safetensors=True", "trust_remote_code=False", "local_files_only=True"):
        assert required in model_call, required


def test_the_scanner_catches_what_it_is_for():
    samples = [
        "torch.load(f)",
        "import pickle",
        "m = AutoModel.from_pretrained(r, trust_remote_code=True)",
        "ET.fromstring(data)",
        "yaml.load(fp)",
        "subprocess.run(cmd, shell=True)",
        "tar.extractall(dest)",
        "torch.load(f, weights_only=False)",
        "eval(text)",
        "yaml.safe_load(fp)",
    ]
    for sample in samples:
        assert any(re.search(p, sample, flags=re.MULTILINE) for p in FORBIDDEN), sample
    for fine in [
        "load_yaml(text)",
        "yaml.safe_dump(data)",
        "model.eval()",
        "defusedxml.ElementTree.fromstring(data)",
        "np.load(path, allow_pickle=False)",
    ]:
        assert not any(re.search(p, fine, flags=re.MULTILINE) for p in FORBIDDEN), fine
