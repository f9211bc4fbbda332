"""Train, save, load and serve models in the safe format."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import errno
import hashlib
import logging
import os
import secrets
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..encoding import TableEncoder
from ..errors import DataError, InputError, IntegrityError
from ..validation import as_frame, prepare_table
from . import _io
from ._dpa import assign_partitions, dpa_radius, in_validation, row_hashes, vote_counts
from ._settings import EPSILON_WARN, TrainSettings, validate_settings

__all__ = [
    "TrainedModel", "train_model", "save_model", "check_model_out", "load_model", "data_digest", "ledger_version_for",
]

log = logging.getLogger(__name__)

_NEG = -np.inf


# ----------------------------------------------------------------------------- predictors


@dataclass
class _Linear:
    """``argmax(X W^T + b)``; an absent class has bias ``-inf``."""

    W: np.ndarray  # (n_classes, d)
    b: np.ndarray  # (n_classes,)

    def scores(self, X: np.ndarray) -> np.ndarray:
        return X @ self.W.T + self.b

    @classmethod
    def from_sklearn(cls, est: Any, n_classes: int) -> "_Linear":
        d = est.coef_.shape[1]
        W = np.zeros((n_classes, d))
        b = np.full(n_classes, _NEG)
        local = est.classes_.astype(np.int64)
        if local.size == 2:  # binary: decision > 0 means classes_[1]
            W[local[1]] = est.coef_[0]
            b[local[1]] = est.intercept_[0]
            b[local[0]] = 0.0
        else:
            W[local] = est.coef_
            b[local] = est.intercept_
        return cls(W, b)

    @classmethod
    def constant(cls, cls_index: int, n_classes: int, d: int) -> "_Linear":
        b = np.full(n_classes, _NEG)
        b[cls_index] = 0.0
        return cls(np.zeros((n_classes, d)), b)


@dataclass
class _Member:
    """One DPA partition: its own encoder and model, a constant class, or nothing (abstains)."""

    state: str  # "model", "constant", "empty"
    encoder: TableEncoder | None = None
    model: Any = None  # _Linear or a fitted sklearn tree
    constant: int = -1
    n_rows: int = 0

    def vote(self, frame: pd.DataFrame, n_classes: int) -> np.ndarray:
        n = frame.shape[0]
        if self.state == "empty":
            return np.full(n, -1, dtype=np.int64)
        if self.state == "constant":
            return np.full(n, self.constant, dtype=np.int64)
        assert self.encoder is not None
        X = self.encoder.transform(frame)
        if isinstance(self.model, _Linear):
            return np.argmax(self.model.scores(X), axis=1).astype(np.int64)
        return np.asarray(self.model.predict(X), dtype=np.int64)


@dataclass
class TrainedModel:
    """A trained model with its metadata.

    Attributes
    ----------
    kind : str
        ``"sklearn-linear"``, ``"torch"``, ``"skops"``, ``"dpa"`` or ``"bagging"``.
    classes : ndarray
        Original label values; prediction code ``i`` means ``classes[i]``.
    features : list of str
        Feature columns the model reads, in order.
    metadata : dict
        Metrics, data digest, settings, privacy and certificate information (JSON).
    """

    kind: str
    classes: np.ndarray
    features: list[str]
    label: str
    metadata: dict[str, Any]
    encoder: TableEncoder | None = None
    estimator: Any = None  # _Linear, torch net, sklearn estimator
    members: list[_Member] = field(default_factory=list)
    torch_state: dict[str, Any] | None = None

    @property
    def certified(self) -> bool:
        return self.kind in ("dpa", "bagging")

    def certificates(self, data: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Vote counts, prediction, certified radius and runner-up class of each row.

        DPA radii are exact (Levine & Feizi); bagging radii hold with probability
        ``1 - alpha`` and are ``-1`` where the vote does not certify anything.
        """
        counts = self.vote_counts(data)
        pred, radius, runner = dpa_radius(counts)
        if self.kind == "bagging":
            from ._bagging import bagging_radius

            c = self.metadata["certified"]
            _, radius = bagging_radius(counts, n=int(self.metadata["n_train"]), k=int(c["bag_size"]), alpha=float(c["alpha"]))
        return counts, pred, radius, runner

    def _frame(self, data: Any, *, where: str = "data") -> pd.DataFrame:
        df = as_frame(data, where=where)
        df = df.set_axis([str(c) for c in df.columns], axis=1)
        missing = [c for c in self.features if c not in df.columns]
        if missing:
            shown = ", ".join(map(repr, missing[:10])) + (" ..." if len(missing) > 10 else "")
            raise InputError(
                f"{where} lacks {len(missing)} feature column(s) the model was trained on: {shown}"
            )
        _check_numeric_cells(df, self._numeric_features(), where)
        return df

    def _numeric_features(self) -> list[str]:
        """Feature columns that were numeric in training (for a certified model: in any member)."""
        encoders = [self.encoder] if self.encoder is not None else [m.encoder for m in self.members]
        out: list[str] = []
        for enc in encoders:
            for col, kind, _ in getattr(enc, "plan_", []):
                if kind == "numeric" and col not in out:
                    out.append(col)
        return out

    def validate_rows(self, data: Any, *, where: str = "data") -> pd.DataFrame:
        """Check rows to predict as ``train`` checks training rows; return them as a frame.

        Raises
        ------
        InputError
            A feature column is missing.
        DataError
            A column that was numeric in training holds text or an infinite value
            (the column and row are named).
        """
        return self._frame(data, where=where)

    def vote_counts(self, data: Any) -> np.ndarray:
        """DPA only: ``(n_rows, n_classes)`` vote counts."""
        if not self.certified:
            raise InputError(f"vote counts need a certified (DPA) model; this model is {self.kind!r}")
        df = self._frame(data)
        votes = np.column_stack([m.vote(df, len(self.classes)) for m in self.members])
        return vote_counts(votes, len(self.classes))

    def predict_codes(self, data: Any) -> np.ndarray:
        """Predicted class codes (indices into :attr:`classes`)."""
        if self.certified:
            return dpa_radius(self.vote_counts(data))[0]  # majority vote, ties to the smaller index
        df = self._frame(data)
        assert self.encoder is not None
        X = self.encoder.transform(df)
        if self.kind == "sklearn-linear":
            return np.argmax(self.estimator.scores(X), axis=1)
        if self.kind == "torch":
            from ._torch import torch_scores

            return np.argmax(torch_scores(self.estimator, X), axis=1)
        return np.asarray(self.estimator.predict(X), dtype=np.int64)

    def predict(self, data: Any) -> np.ndarray:
        """Predicted labels, as the original label values."""
        return self.classes[self.predict_codes(data)]


def _check_numeric_cells(df: pd.DataFrame, columns: list[str], where: str) -> None:
    """Refuse text and infinities in columns the model reads as numbers.

    The encoder would silently turn text into a missing value (imputed with the training
    median) and pass infinities through to the model; both hide what the row holds.
    """
    for col in columns:
        s = df[col]
        if pd.api.types.is_bool_dtype(s.dtype):
            continue
        if pd.api.types.is_numeric_dtype(s.dtype):
            values = s.to_numpy(dtype=float, na_value=np.nan)
        else:
            text = s.astype("string").str.strip()
            values = pd.to_numeric(text.mask(text == ""), errors="coerce").to_numpy(dtype=float, na_value=np.nan)
            not_number = np.isnan(values) & text.notna().to_numpy() & (text != "").fillna(False).to_numpy()
            if not_number.any():
                r = int(np.flatnonzero(not_number)[0])
                raise DataError(
                    f"{where}: column {col!r} was numeric in training but row {r} holds {s.iloc[r]!r} "
                    f"({int(not_number.sum())} non-numeric value(s) in all); fix or empty those cells"
                )
        inf = np.isinf(values)
        if inf.any():
            r = int(np.flatnonzero(inf)[0])
            raise DataError(
                f"{where}: column {col!r} has an infinite value at row {r} ({int(inf.sum())} inf value(s) "
                "in all); replace them with a finite value or leave them empty"
            )


# ----------------------------------------------------------------------------- training


def data_digest(data: Any) -> dict[str, Any]:
    """SHA-256 of the file's bytes (or of the frame's CSV text) and the ledger version if any."""
    if isinstance(data, (str, Path)):
        p = Path(data)
        sha = _io.sha256_file(p)
        return {"sha256": sha, "of": "file", "path": str(p), "ledger_version": ledger_version_for(p, sha)}
    df = as_frame(data)
    digest = hashlib.sha256(df.to_csv(index=False).encode("utf-8")).hexdigest()
    return {"sha256": digest, "of": "frame-csv", "path": None, "ledger_version": None}


def ledger_version_for(path: Path, sha256: str | None = None) -> str | None:
    """The ledger version id (``NAME@N``) recorded for this exact file, when a store exists.

    Looks in the project store (``.poisonguard/`` in the working directory, or
    ``$POISONGUARD_DB``) for the latest dataset version whose recorded file SHA-256
    equals this file's. Returns ``None`` without a store or a matching version. A
    store that cannot be read is logged, never fatal: the SHA-256 is always recorded.
    """
    import os

    if not (Path.cwd() / ".poisonguard").is_dir() and not os.environ.get("POISONGUARD_DB"):
        return None
    try:
        from ..provenance import list_versions
        from ..store import open_store

        digest = sha256 or _io.sha256_file(path)
        store = open_store()
        matches = [v for v in list_versions(store) if v.payload.get("file", {}).get("sha256") == digest]
        return matches[-1].version_id if matches else None
    except Exception as exc:  # the ledger is optional metadata here
        log.warning("could not look up the ledger version of %s: %s", path, exc)
        return None


def train_model(data: Any, *, label: str, settings: TrainSettings | None = None) -> TrainedModel:
    """Train a model on a table (path or DataFrame) and return it with its metadata.

    Raises
    ------
    InputError
        Invalid settings (all problems named at once), unknown label column.
    DataError
        Unusable data: a single class, NaN labels, too few rows.
    """
    s = settings or TrainSettings()
    validate_settings(s)
    prep = prepare_table(data, label=label, require_label=True)
    frame, y, classes = prep.frame, prep.y, prep.classes
    assert y is not None
    n_classes = int(classes.size)
    digest = data_digest(data)
    if s.certified is not None:
        hashes = row_hashes(frame, prep.features)
        is_val = in_validation(hashes, s.val_fraction)
    else:
        is_val = _stratified_val(y, s.val_fraction, s.seed)
    tr = np.flatnonzero(~is_val)
    va = np.flatnonzero(is_val)
    if tr.size < 2:
        raise DataError(f"only {tr.size} training row(s) left after the validation split")
    third = -(-int(tr.size) // 3)  # ceil: Opacus then samples at rate 1 / ceil(n / batch) = 1/3
    if s.shrink_batch and s.batch_size > third:
        s = dataclasses.replace(s, batch_size=third)
    validate_settings(s, n_train=int(tr.size))
    f_tr = frame.iloc[tr].reset_index(drop=True)
    y_tr = y[tr]
    if np.unique(y_tr).size < 2:
        raise DataError(f"the training split has a single class ({classes[y_tr[0]]!r})")
    meta: dict[str, Any] = {
        "label": label,
        "features": list(prep.features),
        "classes": [_jsonable(c) for c in classes],
        "n_rows": int(frame.shape[0]),
        "n_train": int(tr.size),
        "n_val": int(va.size),
        "data": digest,
        "settings": _settings_json(s),
        "privacy": None,
        "certified": None,
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "warnings": list(prep.warnings),
    }
    model = TrainedModel(kind="", classes=classes, features=list(prep.features), label=label, metadata=meta)
    if s.certified is not None:
        _fit_dpa(model, f_tr, y_tr, n_classes, s)
    else:
        enc = TableEncoder().fit(f_tr, prep.features)
        X_tr = enc.transform(f_tr)
        model.encoder = enc
        _fit_single(model, X_tr, y_tr, n_classes, s)
    if va.size:
        from sklearn.metrics import accuracy_score, f1_score

        pred = model.predict_codes(frame.iloc[va].reset_index(drop=True))
        meta["metrics"] = {
            "accuracy": float(accuracy_score(y[va], pred)),
            "macro_f1": float(f1_score(y[va], pred, average="macro", labels=np.arange(n_classes), zero_division=0)),
            "split": "validation",
        }
        if model.certified:
            _, _, radius, _ = model.certificates(frame.iloc[va].reset_index(drop=True))
            ok = pred == y[va]
            meta["certified"]["validation_certified_accuracy"] = {
                str(r): float(np.mean(ok & (radius >= r))) for r in (0, 1, 2, 5, 10, 20)
            }
    else:
        meta["metrics"] = None
    meta["kind"] = model.kind
    return model


def _stratified_val(y: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    is_val = np.zeros(y.size, dtype=bool)
    if fraction <= 0:
        return is_val
    from sklearn.model_selection import train_test_split

    idx = np.arange(y.size)
    counts = np.bincount(y)
    stratify = y if counts[counts > 0].min() >= 2 else None
    if stratify is None:
        warnings.warn("a class has a single row; the validation split is not stratified", stacklevel=3)
    try:
        _, va = train_test_split(idx, test_size=fraction, random_state=seed, stratify=stratify)
    except ValueError as exc:
        raise DataError(f"cannot make a {fraction:g} validation split of {y.size} rows: {exc}") from exc
    is_val[va] = True
    return is_val


def _fit_single(model: TrainedModel, X: np.ndarray, y: np.ndarray, n_classes: int, s: TrainSettings) -> None:
    meta = model.metadata
    if s.model == "mlp" or s.dp is not None or s.backend == "torch":
        from ._torch import build_net

        hidden = tuple(s.hidden) if s.model == "mlp" else ()
        fit = _fit_torch(X, y, n_classes, hidden, s)
        net = build_net(fit.arch)
        net.load_state_dict(fit.state_dict)
        model.kind = "torch"
        model.estimator = net
        model.torch_state = fit.state_dict
        meta["arch"] = fit.arch
        meta["training"] = {"steps": fit.steps, "seconds_per_epoch": fit.seconds_per_epoch, "sample_rate": fit.sample_rate}
        if s.dp is not None:
            _warn_weak_privacy(meta, fit.epsilon_spent, s.dp.epsilon)
            meta["privacy"] = {
                "mechanism": "DP-SGD (Opacus), Poisson sampling",
                "accountant": s.dp.accountant,
                "target_epsilon": s.dp.epsilon,
                "epsilon_spent": fit.epsilon_spent,
                "delta": s.dp.delta,
                "noise_multiplier": fit.noise_multiplier,
                "max_grad_norm": s.dp.max_grad_norm,
                "grad_sample_mode": s.dp.grad_sample_mode,
                "sample_rate": fit.sample_rate,
                "steps": fit.steps,
            }
        return
    if s.model == "logreg":
        from sklearn.linear_model import LogisticRegression

        est = LogisticRegression(max_iter=s.max_iter)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*(converge|n_jobs|penalty).*")
            est.fit(X, y)
        model.kind = "sklearn-linear"
        model.estimator = _Linear.from_sklearn(est, n_classes)
        return
    if s.model == "gbdt":
        from sklearn.ensemble import HistGradientBoostingClassifier

        est = HistGradientBoostingClassifier(max_iter=s.gbdt_iter, random_state=s.seed, early_stopping=False)
    else:
        from sklearn.tree import DecisionTreeClassifier

        est = DecisionTreeClassifier(max_depth=s.tree_depth, random_state=s.seed)
    est.fit(X, y)
    model.kind = "skops"
    model.estimator = est


def _warn_weak_privacy(meta: dict[str, Any], spent: float | None, target: float | None) -> None:
    """Log and record a warning when the budget is above :data:`EPSILON_WARN`."""
    eps = target if target is not None else spent
    if eps is None or eps <= EPSILON_WARN:
        return
    what = f"target epsilon {eps:g}" if target is not None else f"epsilon spent {eps:.4g}"
    msg = (f"{what} is above {EPSILON_WARN:g}: this model's privacy guarantee is weak (one row may change "
           f"any outcome's odds by up to e^{eps:.3g}); budgets of 1-{EPSILON_WARN:g} are the usual range")
    log.warning(msg)
    meta["warnings"].append(msg)


def _fit_torch(X: np.ndarray, y: np.ndarray, n_classes: int, hidden: tuple[int, ...], s: TrainSettings) -> Any:
    from ..errors import PoisonguardError
    from ._torch import fit_torch

    try:
        return fit_torch(
            X, y, n_classes=n_classes, hidden=hidden, epochs=s.epochs, batch_size=s.batch_size,
            lr=s.lr, seed=s.seed, dp=s.dp, activation=s.activation, input_clip=s.input_clip,
        )
    except PoisonguardError:
        raise
    except ValueError as exc:  # opacus: the budget cannot be met with any noise in its search range
        if s.dp is None:
            raise
        raise InputError(
            f"DP-SGD cannot reach epsilon={s.dp.epsilon} at delta={s.dp.delta} with {s.epochs} epochs "  # type: ignore[union-attr]
            f"and batch size {s.batch_size}: {exc}; use fewer epochs, a smaller batch or a larger epsilon"
        ) from exc


def _fit_dpa(model: TrainedModel, frame: pd.DataFrame, y: np.ndarray, n_classes: int, s: TrainSettings) -> None:
    assert s.certified is not None
    k = s.certified.partitions
    if s.certified.method == "bagging":
        _fit_bagging(model, frame, y, n_classes, s)
        return
    parts = assign_partitions(row_hashes(frame, model.features), k)
    members: list[_Member] = []
    for j in range(k):
        idx = np.flatnonzero(parts == j)
        members.append(_fit_member(frame.iloc[idx], y[idx], model.features, n_classes, s))
    model.kind = "dpa"
    model.members = members
    sizes = np.bincount(parts, minlength=k)
    model.metadata["certified"] = {
        "method": "DPA (Levine & Feizi, ICLR 2021)",
        "partitions": k,
        "base_model": s.model,
        "assignment": "sha256(canonical feature bytes, label excluded)[:8] mod K",
        "tie_break": "smaller class index",
        "radius": "min over c' != c of floor((n_c - n_c' - [c' < c]) / 2)",
        "partition_sizes": {"min": int(sizes.min()), "median": float(np.median(sizes)), "max": int(sizes.max())},
        "empty_partitions": int((sizes == 0).sum()),
        "constant_partitions": int(sum(m.state == "constant" for m in members)),
    }


def _fit_bagging(model: TrainedModel, frame: pd.DataFrame, y: np.ndarray, n_classes: int, s: TrainSettings) -> None:
    assert s.certified is not None
    c = s.certified
    n = int(y.size)
    k = c.bag_size if c.bag_size is not None else max(10, n // 20)
    rng = np.random.default_rng(s.seed)
    model.members = []
    for _ in range(c.partitions):
        idx = rng.integers(0, n, size=k)  # uniform, with replacement
        model.members.append(_fit_member(frame.iloc[idx], y[idx], model.features, n_classes, s))
    model.kind = "bagging"
    model.metadata["certified"] = {
        "method": "bagging (Jia, Cao & Gong, AAAI 2021)",
        "partitions": c.partitions,
        "bag_size": int(k),
        "alpha": c.alpha,
        "base_model": s.model,
        "radius": "largest r with (a'/a)(pA_low - pB_up - 1 + a) + a' - 1 > 0 for all mixes of r edits; "
                  "Clopper-Pearson bounds, Bonferroni over classes; holds with probability 1 - alpha",
        "constant_partitions": int(sum(m.state == "constant" for m in model.members)),
    }


def _fit_member(frame: pd.DataFrame, y: np.ndarray, features: list[str], n_classes: int, s: TrainSettings) -> _Member:
    if y.size == 0:
        return _Member(state="empty")
    local = np.unique(y)
    if local.size == 1:
        return _Member(state="constant", constant=int(local[0]), n_rows=int(y.size))
    enc = TableEncoder().fit(frame, features)
    X = enc.transform(frame)
    if s.model == "logreg":
        from sklearn.linear_model import LogisticRegression

        est = LogisticRegression(max_iter=s.max_iter)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*(converge|n_jobs|penalty).*")
            est.fit(X, y)
        m: Any = _Linear.from_sklearn(est, n_classes)
    else:
        from sklearn.tree import DecisionTreeClassifier

        m = DecisionTreeClassifier(max_depth=s.tree_depth, random_state=s.seed).fit(X, y)
    return _Member(state="model", encoder=enc, model=m, n_rows=int(y.size))


def _settings_json(s: TrainSettings) -> dict[str, Any]:
    d = dataclasses.asdict(s)
    d["hidden"] = list(s.hidden)
    return d


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    return str(v)


# ----------------------------------------------------------------------------- save / load

_META = "metadata.json"
_SCHEMA = "schema.json"


def check_model_out(out_dir: str | Path, *, overwrite: bool = False) -> Path:
    """Refuse an ``out_dir`` that :func:`save_model` could not publish (call it before training).

    Raises
    ------
    InputError
        ``out_dir`` is a file, or a non-empty directory and ``overwrite`` is false.
    """
    d = Path(out_dir)
    if d.exists() and not d.is_dir():
        raise InputError(f"{{out_dir}} {d} is a file, not a directory", params=["out_dir"])
    if d.is_dir() and any(d.iterdir()) and not overwrite:
        raise InputError(f"{{out_dir}} {d} is not empty; choose a new directory or pass {{overwrite}}",
                         params=["out_dir", "overwrite"])
    return d


def save_model(model: TrainedModel, out_dir: str | Path, *, overwrite: bool = False) -> str:
    """Write ``model`` to ``out_dir`` in the safe format; return the manifest's SHA-256.

    The files are written into a temporary sibling directory that is renamed to
    ``out_dir`` only when complete, so a failure leaves nothing behind (and an
    overwritten model stays intact until the new one is in place).

    Raises
    ------
    InputError
        ``out_dir`` exists and is not empty (unless ``overwrite``), or is a file.
    """
    d = check_model_out(out_dir, overwrite=overwrite)
    d.parent.mkdir(parents=True, exist_ok=True)
    # mkdir (not mkdtemp, which makes 0700) so that the model directory follows the umask
    tmp = d.parent / f".{d.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    tmp.mkdir()
    try:
        digest = _write_model_files(model, tmp)
        _publish_dir(tmp, d, overwrite=overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return digest


def _publish_dir(tmp: Path, d: Path, *, overwrite: bool) -> None:
    """Rename the finished ``tmp`` to ``d`` (an old ``d`` is moved aside first and then removed)."""
    try:
        os.rename(tmp, d)  # also replaces an empty directory
        return
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST) or not overwrite:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                raise InputError(f"{{out_dir}} {d} is not empty; choose a new directory or pass {{overwrite}}",
                                 params=["out_dir", "overwrite"]) from exc
            raise
    old = d.parent / f".{d.name}.old-{os.getpid()}-{secrets.token_hex(4)}"
    os.rename(d, old)
    try:
        os.rename(tmp, d)
    except BaseException:
        os.rename(old, d)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _write_model_files(model: TrainedModel, d: Path) -> str:
    files = [_META]
    meta = dict(model.metadata)
    meta["kind"] = model.kind
    if not model.certified:
        assert model.encoder is not None
        _io.write_json(d / _SCHEMA, _io.encoder_to_json(model.encoder))
        files.append(_SCHEMA)
    if model.kind == "sklearn-linear":
        _io.save_arrays(d / "linear.npz", {"W": model.estimator.W, "b": model.estimator.b})
        files.append("linear.npz")
    elif model.kind == "torch":
        from ._torch import state_dict_bytes

        assert model.torch_state is not None
        (d / "weights.pt").write_bytes(state_dict_bytes(model.torch_state))
        files.append("weights.pt")
    elif model.kind == "skops":
        _io.dump_skops(model.estimator, d / "model.skops")
        files.append("model.skops")
    elif model.certified:
        members_json = []
        arrays: dict[str, np.ndarray] = {}
        trees: list[Any] = []
        for j, m in enumerate(model.members):
            entry: dict[str, Any] = {"state": m.state, "n_rows": m.n_rows, "constant": m.constant}
            if m.state == "model":
                assert m.encoder is not None
                entry["encoder"] = _io.encoder_to_json(m.encoder)
                if isinstance(m.model, _Linear):
                    arrays[f"W_{j}"] = m.model.W
                    arrays[f"b_{j}"] = m.model.b
                else:
                    entry["tree"] = len(trees)
                    trees.append(m.model)
            members_json.append(entry)
        _io.write_json(d / "members.json", members_json)
        files.append("members.json")
        if arrays:
            _io.save_arrays(d / "members.npz", arrays)
            files.append("members.npz")
        if trees:
            _io.dump_skops(trees, d / "members.skops")
            files.append("members.skops")
    else:  # pragma: no cover - guarded by train_model
        raise InputError(f"unknown model kind {model.kind!r}")
    _io.write_json(d / _META, meta)
    return _io.write_manifest(d, files)


def load_model(model_dir: str | Path, *, expected_manifest_sha256: str | None = None) -> TrainedModel:
    """Load a model saved by :func:`save_model`, verifying every file's SHA-256 first.

    Raises
    ------
    NotFoundError
        No such model directory.
    IntegrityError
        A file was modified, is missing, or holds something the safe loaders refuse.
    """
    import json

    d = Path(model_dir)
    files = _io.read_manifest(d, expected_manifest_sha256=expected_manifest_sha256)
    where = str(d)
    try:
        meta = json.loads(_io.read_verified(files, _META, where))
        kind = meta["kind"]
        classes = np.asarray(meta["classes"])
        features = [str(c) for c in meta["features"]]
        label = str(meta["label"])
    except (ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(f"{d}/{_META} is malformed: {exc}") from exc
    model = TrainedModel(kind=kind, classes=classes, features=features, label=label, metadata=meta)
    n_classes = classes.size
    if kind not in ("dpa", "bagging"):
        model.encoder = _io.encoder_from_json(json.loads(_io.read_verified(files, _SCHEMA, where)))
    if kind == "sklearn-linear":
        arr = _io.load_arrays(_io.read_verified(files, "linear.npz", where), where)
        model.estimator = _checked_linear(arr.get("W"), arr.get("b"), n_classes, model.encoder.n_output, where)  # type: ignore[union-attr]
    elif kind == "torch":
        from ._torch import load_state_dict_bytes

        model.estimator = load_state_dict_bytes(_io.read_verified(files, "weights.pt", where), meta["arch"], where)
    elif kind == "skops":
        model.estimator = _io.load_skops(_io.read_verified(files, "model.skops", where), where)
    elif kind in ("dpa", "bagging"):
        members_json = json.loads(_io.read_verified(files, "members.json", where))
        arrays = _io.load_arrays(files["members.npz"], where) if "members.npz" in files else {}
        trees = _io.load_skops(files["members.skops"], where) if "members.skops" in files else []
        for j, e in enumerate(members_json):
            state = e.get("state")
            if state == "model":
                enc = _io.encoder_from_json(e["encoder"])
                if "tree" in e:
                    m: Any = trees[int(e["tree"])]
                else:
                    m = _checked_linear(arrays.get(f"W_{j}"), arrays.get(f"b_{j}"), n_classes, enc.n_output, where)
                model.members.append(_Member(state="model", encoder=enc, model=m, n_rows=int(e["n_rows"])))
            elif state in ("constant", "empty"):
                c = int(e.get("constant", -1))
                if state == "constant" and not (0 <= c < n_classes):
                    raise IntegrityError(f"{where}: partition {j} has an invalid constant class {c}")
                model.members.append(_Member(state=state, constant=c, n_rows=int(e.get("n_rows", 0))))
            else:
                raise IntegrityError(f"{where}: partition {j} has an unknown state {state!r}")
    else:
        raise IntegrityError(f"{where}: unknown model kind {kind!r}")
    return model


def _checked_linear(W: Any, b: Any, n_classes: int, d: int, where: str) -> _Linear:
    if W is None or b is None or W.shape != (n_classes, d) or b.shape != (n_classes,):
        raise IntegrityError(f"{where}: linear weights do not match {n_classes} classes x {d} features")
    return _Linear(np.asarray(W, dtype=np.float64), np.asarray(b, dtype=np.float64))
