"""Library errors name parameters; the CLI renders the same errors with its options."""

from __future__ import annotations

import pickle

import pandas as pd
import pytest

import poisonguard
from poisonguard.cli import main
from poisonguard.errors import InputError


@pytest.fixture()
def table(tmp_path):
    path = tmp_path / "t.csv"
    pd.DataFrame({"a": range(40), "b": [i % 7 for i in range(40)], "y": [i % 2 for i in range(40)]}).to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    ("kwargs", "library", "cli_args", "cli"),
    [
        ({"label": "y", "top": 0}, "top must be >= 1, got 0", ["--label", "y", "--top", "0"], "--top must be >= 1, got 0"),
        ({"label": "y", "top": 3, "contamination": 0.1}, "give either top or contamination, not both",
         ["--label", "y", "--top", "3", "--contamination", "0.1"], "give either --top or --contamination, not both"),
        ({"label": "y", "contamination": 1.5}, "contamination must be in (0, 1), got 1.5",
         ["--label", "y", "--contamination", "1.5"], "--contamination must be in (0, 1), got 1.5"),
        ({"label": "nope"}, "data: label column 'nope' not found", ["--label", "nope"], "data: --label column 'nope' not found"),
        ({"label": "y", "id_col": "nope"}, "data: id_col column 'nope' not found",
         ["--label", "y", "--id", "nope"], "data: --id column 'nope' not found"),
    ],
)
def test_library_names_parameters_and_cli_names_options(table, capsys, kwargs, library, cli_args, cli):
    with pytest.raises(InputError) as info:
        poisonguard.scan(table, **kwargs)
    assert str(info.value).startswith(library)
    assert "--" not in str(info.value)
    assert main(["scan", str(table), *cli_args, "--out", str(table.parent / "out.csv")]) == 2
    err = capsys.readouterr().err
    assert f"poisonguard: error: {cli}" in err
    assert "Traceback" not in err


def test_parameterised_errors_survive_pickling():
    # errors cross process boundaries (benchmark workers, Dask): the parameter list must survive
    exc = pickle.loads(pickle.dumps(InputError("{top} must be >= 1, got 0", params=["top"])))
    assert str(exc) == "top must be >= 1, got 0"
    assert exc.render({"top": "--top"}) == "--top must be >= 1, got 0"
