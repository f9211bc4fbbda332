"""Every command against generated bad tables and bad options: never exit 1, never a traceback.

Exit 1 means "internal error": a bug reached the user. Whatever the input, a command
must either work (0), refuse with a one-line message (2, or 3/4/5/6 for their own
reasons) or be interrupted. The examples are drawn by hypothesis under the repo's
``ci`` profile (derandomized), in-process through ``poisonguard.cli.main`` for speed;
tests/cli/test_entrypoints.py launches the real processes.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from poisonguard.cli import main

pytestmark = pytest.mark.filterwarnings("ignore")

# --------------------------------------------------------------------- tables
# Each example is a valid table with at most one fault, so a fault is reached and not
# masked by another one refused earlier.
CELLS = ["", "NA", "nan", "inf", "-inf", "1e308", "-1e200", "1e160", "abc", '"q,1"', " 4 ", "0x1F", "1,5"]
RESERVED = ["row", "suspicion", "detectors", "reason", "label", "a", "id"]
TABLE_FAULTS = ["none", "none", "none", "empty", "header_only", "one_column", "one_row", "cell", "cell", "cell",
                "column_name", "column_name", "separator", "not_utf8", "unique_label", "single_class",
                "continuous_label", "gzip", "blank_lines", "garbage"]


def _base(n: int = 12) -> list[list[str]]:
    rows = [["a", "b", "c", "label"]]
    rows += [[str(i % 5), str((i * 3) % 7), f"{(i * 0.37) % 2:.2f}", "ab"[i % 2]] for i in range(n)]
    return rows


@st.composite
def tables(draw) -> bytes:
    """A 12-row CSV with one drawn fault (or none)."""
    import gzip

    fault = draw(st.sampled_from(TABLE_FAULTS))
    rows, sep = _base(), ","
    if fault == "empty":
        return b""
    if fault == "garbage":
        return draw(st.binary(min_size=1, max_size=40))
    if fault == "header_only":
        rows = rows[:1]
    elif fault == "one_row":
        rows = rows[:2]
    elif fault == "one_column":
        rows = [r[:1] for r in rows]
    elif fault == "cell":
        i, j = draw(st.integers(1, len(rows) - 1)), draw(st.integers(0, 3))
        rows[i][j] = draw(st.sampled_from(CELLS))
    elif fault == "column_name":
        rows[0][draw(st.integers(0, 2))] = draw(st.sampled_from(RESERVED))
    elif fault == "separator":
        sep = draw(st.sampled_from([";", "\t", "|"]))
    elif fault == "unique_label":
        for i, r in enumerate(rows[1:]):
            r[3] = f"u{i}"
    elif fault == "single_class":
        for r in rows[1:]:
            r[3] = "a"
    elif fault == "continuous_label":
        for i, r in enumerate(rows[1:]):
            r[3] = f"{i * 1.37:.2f}"
    text = "\n".join(sep.join(r) for r in rows) + "\n"
    if fault == "blank_lines":
        text = text.replace("\n", "\n\n", 3)
    data = text.encode()
    if fault == "not_utf8":
        data += b"1,2,\xff\xfe,a\n"
    if fault == "gzip":
        data = gzip.compress(data)
    return data




def _write(tmp: Path, data: bytes, name: str = "t.csv") -> Path:
    p = tmp / name
    p.write_bytes(data)
    return p


def _run(argv: list[str], capsys) -> tuple[int, str]:
    rc = main(argv)
    cap = capsys.readouterr()
    return rc, cap.out + cap.err


def _check(rc: int, text: str, argv: list[str]) -> None:
    assert rc != 1, f"exit 1 for {argv}: {text[-800:]}"
    assert "Traceback" not in text, f"traceback for {argv}: {text[-800:]}"
    assert "internal error" not in text, f"internal error for {argv}: {text[-800:]}"


def _output(draw, tmp: Path, data: Path) -> str:
    """Where to write: a fresh file (mostly), the input itself, a directory or a path under a file."""
    kind = draw(st.sampled_from(["fresh", "fresh", "fresh", "fresh", "fresh", "input", "dir", "under_file"]))
    if kind == "input":
        return str(data)
    if kind == "dir":
        (tmp / "adir").mkdir(exist_ok=True)
        return str(tmp / "adir")
    if kind == "under_file":
        return str(data / "out.csv")
    return str(tmp / f"out{draw(st.sampled_from(['.csv', '.parquet', '.csv.gz']))}")


def _opt(draw, flag: str, values: list[str], argv: list[str]) -> None:
    if draw(st.booleans()):
        argv += [flag, draw(st.sampled_from(values))]


SETTINGS = ["knn_label.n_neighbors=abc", "knn_label.n_neighbors=-3", "knn_label.n_neighbors=2.5",
            "iforest.n_estimators=0", "iforest.random_state=nan", "knn_label.noise_rate=0.7", "bogus.x=1",
            "knn_label.n_neighbors=3", "iforest.max_samples=[1]"]
DETECTORS = ["knn_label", "iforest", "knn_label,iforest", "nope", "duplicates", "confident", ""]

SHARED = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


# ------------------------------------------------------------------- commands
SCAN_FAULTS = [
    [], [], [], ["--label", "nope"], ["--label", "a"], ["--top", "0"], ["--top", "2.5"], ["--top", "-1"],
    ["--top", "1000"], ["--contamination", "nan"], ["--contamination", "-0.1"], ["--contamination", "1"],
    ["--contamination", "abc"], ["--fail-over", "nan"], ["--fail-over", "0"], ["--id", "nope"], ["--id", "a"],
    ["--features", ","], ["--features", "label"], ["--features", "a,a"], ["--source", "b"], ["--config", "/nonexistent"],
    ["--seed", "-1"], ["--since", "t@1"], ["--ledger", "t@1"],
] + [["--set", s] for s in SETTINGS] + [["--detectors", d] for d in DETECTORS]


@settings(max_examples=50, **SHARED)
@given(data=st.data(), table=tables())
def test_scan_never_exits_1(tmp_path_factory, capsys, data, table):
    tmp = tmp_path_factory.mktemp("scan")
    src = _write(tmp, table, data.draw(st.sampled_from(["t.csv", "t.csv", "t.csv.gz", "t.txt"])))
    argv = ["scan", str(src), "--label", "label", "--out", _output(data.draw, tmp, src), "--db", str(tmp / "pg.db")]
    extra = data.draw(st.sampled_from(SCAN_FAULTS))
    if "--detectors" not in extra and "--set" not in extra:
        argv += ["--detectors", "knn_label,iforest,duplicates"]  # the fast ones; the default set is slower
    elif "--set" in extra:
        argv += ["--detectors", "knn_label,iforest"]
    argv += extra
    _opt(data.draw, "--scores", [str(src), str(tmp / "s.csv"), str(tmp)], argv)
    _check(*_run(argv, capsys), argv)


@settings(max_examples=20, **SHARED)
@given(data=st.data(), table=tables())
def test_sanitize_never_exits_1(tmp_path_factory, capsys, data, table):
    tmp = tmp_path_factory.mktemp("san")
    src = _write(tmp, table)
    review = _write(tmp, data.draw(st.sampled_from([
        b"row,decision\n0,remove\n", b"row,decision\n99,remove\n", b"row,decision\nx,keep\n", b"row\n0\n",
        b"decision\nremove\n", b"", b"row,decision\n0,perhaps\n", b"row,decision,a\n0,remove,1\n",
    ])), "review.csv")
    argv = ["sanitize", str(src), "--label", data.draw(st.sampled_from(["label", "label", "nope"])),
            "--out", _output(data.draw, tmp, src), "--review", str(review)]
    _opt(data.draw, "--quarantine", [str(review), str(tmp / "q.csv"), str(tmp)], argv)
    _opt(data.draw, "--id", ["a", "nope"], argv)
    _check(*_run(argv, capsys), argv)


@settings(max_examples=20, **SHARED)
@given(data=st.data(), table=tables())
def test_attack_never_exits_1(tmp_path_factory, capsys, data, table):
    tmp = tmp_path_factory.mktemp("att")
    src = _write(tmp, table)
    argv = ["attack", str(src), "--label", data.draw(st.sampled_from(["label", "label", "nope"])),
            "--kind", data.draw(st.sampled_from(["flip", "outlier", "targeted", "backdoor", "bogus"])),
            "--out", _output(data.draw, tmp, src)]
    argv += data.draw(st.sampled_from([
        [], [], ["--rate", "0"], ["--rate", "1.5"], ["--rate", "nan"], ["--rate", "0.5"], ["--target", "zz"],
        ["--target", "a", "--source-class", "b"], ["--scale", "abc"], ["--scale", "nan,inf"], ["--scale", "8,4"],
        ["--features", "nope"], ["--features", "label"], ["--mask-column", "a"], ["--truth", str(src)],
        ["--target", "a", "--trigger", "tabular"], ["--target", "a", "--trigger", "patch", "--image-shape", "2x2"],
        ["--n-rows", "5"], ["--holdout-fraction", "2", "--target", "a", "--holdout", str(tmp / "h.csv")],
    ]))
    _check(*_run(argv, capsys), argv)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("model")
    src = _write(tmp, ("a,b,label\n" + "".join(f"{i % 5},{(i * 3) % 7},{'ab'[i % 2]}\n" for i in range(40))).encode())
    out = tmp / "m"
    assert main(["train", str(src), "--label", "label", "--out", str(out)]) == 0
    return out


@settings(max_examples=15, **SHARED)
@given(data=st.data(), table=tables())
def test_train_never_exits_1(tmp_path_factory, capsys, data, table):
    tmp = tmp_path_factory.mktemp("train")
    src = _write(tmp, table)
    argv = ["train", str(src), "--label", data.draw(st.sampled_from(["label", "label", "nope"])),
            "--out", data.draw(st.sampled_from([str(tmp / "m"), str(src), str(tmp / "m")]))]
    argv += data.draw(st.sampled_from([
        [], [], ["--model", "tree"], ["--model", "bogus"], ["--val-fraction", "0"], ["--val-fraction", "1"],
        ["--val-fraction", "nan"], ["--hidden", "abc"], ["--tree-depth", "-1"], ["--seed", "-5"],
        ["--epsilon", "1"], ["--certified", "--partitions", "0"], ["--certified", "--partitions", "1000"],
        ["--certified", "--method", "bogus"], ["--gbdt-iter", "0", "--model", "gbdt"],
    ]))
    _check(*_run(argv, capsys), argv)


@settings(max_examples=15, **SHARED)
@given(data=st.data(), table=tables())
def test_predict_and_certify_never_exit_1(tmp_path_factory, capsys, model_dir, data, table):
    tmp = tmp_path_factory.mktemp("pred")
    src = _write(tmp, table)
    command = data.draw(st.sampled_from(["predict", "certify"]))
    model = data.draw(st.sampled_from([str(model_dir), str(model_dir), str(tmp), str(src)]))
    argv = [command, model, str(src)]
    if data.draw(st.booleans()):
        argv += ["--out", data.draw(st.sampled_from([str(src), str(tmp / "p.csv"), str(model_dir / "x.csv"), str(tmp)]))]
    _check(*_run(argv, capsys), argv)


@settings(max_examples=10, **SHARED)
@given(data=st.data(), table=tables())
def test_ledger_and_source_never_exit_1(tmp_path_factory, capsys, data, table):
    tmp = tmp_path_factory.mktemp("led")
    src = _write(tmp, table)
    db = ["--db", str(tmp / "pg.db")]
    key = ["--key", str(tmp / "ledger.key")]
    steps = [["ledger", "init", *db, *key]] if data.draw(st.booleans()) else []
    steps += data.draw(st.lists(st.sampled_from([
        ["source", "add", "vendor", "--kind", "vendor", *db],
        ["source", "add", "x", "--kind", "bogus", *db],
        ["ledger", "add", str(src), "--name", "t", "--source", "vendor", *db, *key],
        ["ledger", "add", str(src), "--name", "t", "--source", "nope", *db, *key],
        ["ledger", "verify", *db, *key],
        ["ledger", "verify", str(src), *db, *key],
        ["ledger", "log", *db],
        ["ledger", "diff", "t@1", "t@2", *db],
        ["ledger", "lineage", "t", *db],
        ["source", "list", *db],
    ]), min_size=1, max_size=4))
    for argv in steps:
        _check(*_run(argv, capsys), argv)


@pytest.mark.parametrize(
    "argv",
    [
        ["detectors"], ["detectors", "--json"], ["--help"], ["bogus-command"], ["scan"], ["scan", "--help"],
        ["bench", "--quick", "--table", "wine"], ["bench", "--timeout", "nan", "--quick"],
        ["bench", "--timeout", "-1", "--quick"],
        ["bench", "--table", "nope", "--no-speed"], ["evaluate", "/nonexistent.csv", "--label", "y", "--test", "/x.csv"],
    ],
)
def test_fixed_commands_never_exit_1(capsys, argv):
    _check(*_run(argv, capsys), argv)


def test_predict_out_over_its_input_or_model_exits_2(tmp_path, capsys, model_dir):
    src = _write(tmp_path, b"a,b\n1,2\n3,4\n5,6\n")
    before = src.read_bytes()
    for out, message in [(src, "--out and DATA are the same file"), (model_dir / "x.csv", "is inside MODEL_DIR")]:
        rc, text = _run(["predict", str(model_dir), str(src), "--out", str(out)], capsys)
        assert rc == 2 and message in " ".join(text.split())
    assert src.read_bytes() == before and not (model_dir / "x.csv").exists()
