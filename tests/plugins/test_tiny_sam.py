"""The tiny SAM and SAM 2.1 checkpoints load like the hub repos, and the builder CLI writes them."""

from __future__ import annotations

import json

import transformers

from vfmstudio.testing.tiny_models import TINY_BUILDERS, main
from vfmstudio.testing.tiny_sam import IMAGE_SIZE


def test_builder_cli_writes_sam_and_sam2_folders(tmp_path, capsys):
    assert {"sam", "sam2"} <= set(TINY_BUILDERS)
    assert main([str(tmp_path), "--only", "sam", "sam2"]) == 0
    assert capsys.readouterr().out.split() == ["sam", str(tmp_path / "sam"), "sam2", str(tmp_path / "sam2")]
    sam = transformers.SamModel.from_pretrained(tmp_path / "sam")
    processor = transformers.SamProcessor.from_pretrained(tmp_path / "sam")
    assert (
        processor.image_processor.size["longest_edge"]
        == IMAGE_SIZE
        == sam.config.prompt_encoder_config.image_size
    )
    sam2 = transformers.Sam2Model.from_pretrained(tmp_path / "sam2")
    pre = json.loads((tmp_path / "sam2" / "preprocessor_config.json").read_text())
    assert pre["size"] == {"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    assert sam2.config.prompt_encoder_config.image_size == IMAGE_SIZE
    # Every weight is random: no zero tensor left by the initialisers (the no-memory embedding included).
    for model in (sam, sam2):
        zero = [name for name, p in model.named_parameters() if not p.detach().abs().sum()]
        assert zero == []
