"""JSON-lines files written by appending (failures, indexes): read back skipping a line a kill cut short."""

from __future__ import annotations

import json
import os
from pathlib import Path


def read_records(path: str | os.PathLike[str]) -> list[dict]:
    """The file's JSON objects, one per line; a missing file is empty; a line that is not a whole
    JSON object (cut short by a killed writer) is skipped."""
    out = []
    try:
        with open(Path(path), encoding="utf-8") as fp:
            for line in fp:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict):
                    out.append(record)
    except FileNotFoundError:
        pass
    return out
