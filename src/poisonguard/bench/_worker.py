"""Worker process of an isolated benchmark cell: ``python -m poisonguard.bench._worker CELL.json OUT.json``."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _main(argv: list[str]) -> int:
    from ._cells import Cell
    from ._run import run_cell

    spec, out = Path(argv[0]), Path(argv[1])
    cell = Cell.from_dict(json.loads(spec.read_text(encoding="utf-8")))
    row = run_cell(cell, measure_memory=True)
    out.write_text(json.dumps(row, allow_nan=False, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
