"""Clean accuracy and attack success rate (ASR) of a model trained on a table, before/after sanitizing."""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError, InputError
from ..validation import as_frame, resolve_class

__all__ = ["evaluate", "EvaluationResult", "ModelScore", "fit_predict"]


@dataclass(frozen=True)
class ModelScore:
    """One trained model's scores on the holdout.

    Attributes
    ----------
    name : str
        ``poisoned``, ``sanitized`` or ``clean`` (the reference).
    n_train : int
        Training rows.
    clean_accuracy : float
        Accuracy on holdout rows without a trigger.
    asr : float or None
        Attack success rate: share of triggered holdout rows whose true class is not
        the target that the model classifies as the target (``None`` without
        triggered rows).
    """

    name: str
    n_train: int
    clean_accuracy: float
    asr: float | None


@dataclass(frozen=True)
class EvaluationResult:
    """Scores of each trained model; ``target`` is the attack's target class."""

    target: Any
    target_inferred: bool
    n_clean_test: int
    n_triggered_test: int
    model: str
    scores: list[ModelScore]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["target"] = self.target.item() if isinstance(self.target, np.generic) else self.target
        return d

    def score(self, name: str) -> ModelScore:
        for s in self.scores:
            if s.name == name:
                return s
        raise KeyError(name)


def _pipeline(model: str, random_state: int):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if model == "logreg":
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=random_state))
    if model == "forest":
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(n_estimators=200, random_state=random_state, n_jobs=1)
    raise InputError(f"unknown model {model!r}; choose 'logreg' or 'forest'")


def fit_predict(train: pd.DataFrame, test: pd.DataFrame, *, label: str, features: list[str], model: str = "logreg",
                random_state: int = 0) -> np.ndarray:
    """Train ``model`` on ``train[features]`` and predict labels of ``test``."""
    from sklearn.exceptions import ConvergenceWarning

    if train[label].nunique() < 2:
        raise DataError(f"the training table has a single class in {label!r}; nothing to learn")
    est = _pipeline(model, random_state)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(train[features].to_numpy(dtype=float), train[label].to_numpy())
    return est.predict(test[features].to_numpy(dtype=float))


def _match(values: np.ndarray, target: Any) -> np.ndarray:
    return np.array([v == target or str(v) == str(target) for v in values])


def evaluate(
    train: Any,
    *,
    label: str,
    test: Any,
    sanitized: Any = None,
    clean: Any = None,
    target: Any = None,
    triggered_col: str = "triggered",
    id_col: str | None = None,
    model: str = "logreg",
    random_state: int = 0,
) -> EvaluationResult:
    """Train on the poisoned table (and the sanitized/clean ones) and score on a triggered holdout.

    Parameters
    ----------
    train : path or DataFrame
        The (possibly poisoned) training table.
    label : str
        Label column.
    test : path or DataFrame
        Holdout with a boolean ``triggered_col``: clean accuracy is measured on rows
        without the trigger, ASR on triggered rows whose label is not ``target``
        (the holdout written by ``poisonguard attack --kind backdoor --holdout``).
        Without that column every row is clean and ASR is ``None``.
    sanitized, clean : path or DataFrame, optional
        The sanitized table, and the unpoisoned table as a reference.
    target : object, optional
        Target class of the backdoor. Default: the class the poisoned model
        predicts most often on triggered rows (reported as inferred).
    """
    tr = as_frame(train, where="train")
    te = as_frame(test, where="test")
    if label not in tr.columns:
        raise InputError(f"train: {{label}} column {label!r} not found", params=["label"])
    if label not in te.columns:
        raise InputError(f"test: {{label}} column {label!r} not found", params=["label"])
    drop = {label, triggered_col} | ({id_col} if id_col else set())
    features = [c for c in tr.columns if c not in drop]
    missing = [c for c in features if c not in te.columns]
    if missing:
        raise InputError(f"test: feature column(s) {missing[:10]} of the training table are missing")
    if triggered_col in te.columns:
        trig = te[triggered_col].astype("string").str.lower().isin(["true", "1", "yes"]).to_numpy()
    else:
        trig = np.zeros(len(te), dtype=bool)
    classes = np.unique(tr[label].to_numpy())
    if target is not None:
        target = classes[resolve_class(target, classes, option="{target}", label=label)]
    tables = [("poisoned", tr)]
    for name, t in (("sanitized", sanitized), ("clean", clean)):
        if t is not None:
            f = as_frame(t, where=name)
            miss = [c for c in features + [label] if c not in f.columns]
            if miss:
                raise InputError(f"{name}: column(s) {miss[:10]} of the training table are missing")
            tables.append((name, f))
    if (~trig).sum() == 0:
        raise DataError("test: no untriggered rows to measure clean accuracy on")
    y_true = te[label].to_numpy()
    preds = {name: fit_predict(t, te, label=label, features=features, model=model, random_state=random_state)
             for name, t in tables}
    inferred = False
    if target is None and trig.any():
        vals, counts = np.unique(preds["poisoned"][trig].astype(str), return_counts=True)
        # predictions came back as text above: map to the label's own value
        target = classes[resolve_class(vals[np.argmax(counts)], classes, option="inferred target", label=label)]
        inferred = True
    asr_rows = trig & ~_match(y_true, target) if target is not None else trig
    scores = []
    for name, t in tables:
        p = preds[name]
        acc = float(np.mean(p[~trig].astype(str) == y_true[~trig].astype(str)))
        asr = float(np.mean(_match(p[asr_rows], target))) if asr_rows.any() else None
        scores.append(ModelScore(name=name, n_train=int(len(t)), clean_accuracy=acc, asr=asr))
    return EvaluationResult(
        target=target, target_inferred=inferred, n_clean_test=int((~trig).sum()),
        n_triggered_test=int(asr_rows.sum()), model=model, scores=scores,
    )
