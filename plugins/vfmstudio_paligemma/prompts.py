"""The task prefixes PaliGemma (2) mix checkpoints were trained with. Pure Python.

The processor adds the image tokens, ``<bos>`` and the trailing newline; these functions only build the
text after ``<bos>``.
"""

from __future__ import annotations

from vfmstudio.plugin_api import ParamError
from vfmstudio_paligemma.parsing import split_classes


def _lang(lang: str) -> str:
    lang = " ".join(str(lang).split())
    if not lang or " " in lang:
        raise ParamError(f"parameter 'lang': expected a language code such as 'en', got {lang!r}")
    return lang


def caption_prompt(length: str = "short", lang: str = "en") -> str:
    return f"{'describe' if length == 'long' else 'caption'} {_lang(lang)}"


def answer_prompt(question: str, lang: str = "en") -> str:
    question = " ".join(str(question).split())
    if not question:
        raise ParamError("parameter 'question': the question is empty")
    return f"answer {_lang(lang)} {question}"


def ocr_prompt() -> str:
    return "ocr"


def raw_prompt(prompt: str) -> str:
    prompt = str(prompt).strip()
    if not prompt:
        raise ParamError("parameter 'prompt': the prompt is empty")
    return prompt


def detect_prompt(classes) -> str:
    return f"detect {' ; '.join(_classes(classes))}"


def segment_prompt(classes) -> str:
    return f"segment {' ; '.join(_classes(classes))}"


def _classes(classes) -> tuple[str, ...]:
    names = split_classes(classes)
    if not names:
        raise ParamError("parameter 'classes': give at least one class, e.g. \"cat ; dog\"")
    return names
