"""The :class:`Monitor`: baselines, logging, late labels, probe sets, checks and history."""

from __future__ import annotations

import datetime as _dt
import io
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from ..errors import DataError, InputError, NotFoundError, PoisonguardError
from ..store import Store, open_store
from ..validation import as_frame
from ._alerts import Alert, Delivery, LogChannel, deliver, make_channel
from ._check import Window, evaluate
from ._config import MonitorConfig, load_config, parse_duration
from ._metrics import CLASS_CONF_SAMPLE, as_text, classification_metrics, feature_reference, numeric_reference
from ._models import AlertRow, Baseline, CheckRow, FeatureBatch, MonitoredModel, PredictionRow, ProbeSet
from ._results import BaselineResult, CheckResult, LabelResult, LogResult, ProbeSetResult, iso

__all__ = ["Monitor", "parse_time", "list_models"]

log = logging.getLogger(__name__)

#: most traffic confidences a check reads for its KS / Mann-Whitney tests
CONF_SAMPLE = 200_000


def parse_time(value: Any, *, what: str = "time") -> float:
    """Epoch seconds from a number, an ISO-8601 string or a datetime (naive means UTC)."""
    if value is None:
        return time.time()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, _dt.datetime):
        dt = value if value.tzinfo else value.replace(tzinfo=_dt.timezone.utc)
        return dt.timestamp()
    try:
        return float(str(value))
    except ValueError:
        pass
    try:
        ts = pd.Timestamp(str(value))
        if ts.tzinfo is None:
            ts = ts.tz_localize("UTC")
        return float(ts.timestamp())
    except (ValueError, TypeError) as exc:
        raise InputError(f"{what} must be epoch seconds or an ISO-8601 time, got {value!r}") from exc


def _timestamps(col: pd.Series, where: str) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(col.dtype):
        ts = col.to_numpy(dtype=float, na_value=np.nan)
    else:
        try:
            parsed = pd.to_datetime(col, utc=True, errors="raise", format="ISO8601")
        except (ValueError, TypeError) as exc:
            raise DataError(f"{where}: timestamp column {col.name!r} is neither epoch seconds nor ISO-8601: {exc}") from exc
        ts = parsed.map(lambda t: t.timestamp() if not pd.isna(t) else np.nan).to_numpy(dtype=float)
    bad = ~np.isfinite(ts)
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        raise DataError(f"{where}: timestamp column {col.name!r} is empty or invalid at row {r} ({int(bad.sum())} rows)")
    return ts


def _column(df: pd.DataFrame, name: str, where: str, flag: str) -> pd.Series:
    if name not in df.columns:
        shown = ", ".join(map(repr, list(df.columns)[:15]))
        raise InputError(f"{where}: no column {name!r} ({{{flag}}}); columns are: {shown}", params=[flag])
    return df[name]


def _codes(values: pd.Series, classes: list[str], where: str, what: str) -> np.ndarray:
    text_values = as_text(values)
    index = {c: i for i, c in enumerate(classes)}
    codes = text_values.map(index)
    bad = codes.isna() & text_values.notna()
    if bad.any():
        r = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"{where}: {what} {text_values.iloc[r]!r} at row {r} is not a class of the baseline "
                        f"({', '.join(classes[:20])})")
    return codes.fillna(-1).to_numpy(dtype=np.int64)


def _parquet(df: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()


def _keys(col: pd.Series, where: str, flag: str) -> pd.Series:
    missing = col.isna()
    if missing.any():
        raise DataError(f"{where}: id column {col.name!r} ({{{flag}}}) is empty at row {int(np.flatnonzero(missing)[0])}")
    return as_text(col)


def list_models(store: Store) -> list[str]:
    """Names of the monitored models (those with a recorded baseline)."""
    with store.session() as s:
        return list(s.scalars(select(MonitoredModel.name).order_by(MonitoredModel.name)))


class Monitor:
    """Monitoring of one named model over the poisonguard store.

    Parameters
    ----------
    model : str
        Name of the monitored model (any text; a baseline creates it).
    store : Store, str or path, optional
        An open store, or a URL / SQLite path (default ``.poisonguard/poisonguard.db`` or
        ``$POISONGUARD_DB``); it is created when missing.
    config : MonitorConfig, str or path, optional
        Thresholds, tests and alert channels (TOML or YAML file); the defaults otherwise.
    channels : sequence of Channel, optional
        Alert channels used in addition to the config's (tests and embedding code).

    Examples
    --------
    >>> mon = Monitor("fraud", store="monitor.db")            # doctest: +SKIP
    >>> mon.record_baseline("val.csv", label="y", pred="pred") # doctest: +SKIP
    >>> mon.log(traffic_frame, id_col="id", pred="pred")       # doctest: +SKIP
    >>> mon.check(window="1d").raise_for_status()              # doctest: +SKIP
    """

    def __init__(self, model: str, *, store: Store | str | Path | None = None,
                 config: MonitorConfig | str | Path | None = None, channels: Sequence[Any] = ()) -> None:
        if not isinstance(model, str) or not model.strip() or len(model) > 200:
            raise InputError(f"model name must be non-empty text of at most 200 characters, got {model!r}")
        self.model = model
        self._own_store = not isinstance(store, Store)
        self.store = store if isinstance(store, Store) else open_store(store, create=True)
        self.config = config if isinstance(config, MonitorConfig) else load_config(config)
        self._extra_channels = list(channels)

    def close(self) -> None:
        if self._own_store:
            self.store.dispose()

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ lookups

    def _model_row(self, s: Any) -> MonitoredModel:
        row = s.scalar(select(MonitoredModel).where(MonitoredModel.name == self.model))
        if row is None:
            known = list(s.scalars(select(MonitoredModel.name).order_by(MonitoredModel.name)))
            raise NotFoundError(f"unknown model {self.model!r}: no baseline recorded "
                                f"(monitored models: {', '.join(known) or 'none'}); "
                                "record one with: poisonguard monitor baseline")
        return row

    def baseline(self) -> tuple[int, list[str], dict[str, Any]]:
        """The model's id, classes and newest baseline."""
        with self.store.session() as s:
            m = self._model_row(s)
            body = s.scalar(select(Baseline.body).where(Baseline.model_id == m.id).order_by(Baseline.id.desc()).limit(1))
            return m.id, json.loads(m.classes), json.loads(body)

    # ------------------------------------------------------------------ baseline

    def record_baseline(self, data: Any, *, label: str, pred: str | None = None, conf: str | None = None,
                        model_dir: str | Path | None = None, features: Sequence[str] | None = None,
                        id_col: str | None = "id", ts_col: str | None = "timestamp") -> BaselineResult:
        """Record a baseline from a labelled validation set.

        Predictions come from column ``pred`` (and confidences from ``conf``), or from the
        saved model in ``model_dir`` (predictions and confidences). Records accuracy,
        macro and per-class precision/recall/F1, the prediction and confidence
        distributions and reference distributions of the input ``features`` (default:
        the model's features, or every column but the label, prediction, confidence,
        ``id_col`` and ``ts_col``: ids and times are not inputs and always "drift").

        Raises
        ------
        InputError
            Neither or both of ``pred`` and ``model_dir``; a missing column.
        DataError
            Empty labels or predictions.
        """
        df = as_frame(data, where="baseline data")
        if (pred is None) == (model_dir is None):
            raise InputError("give exactly one of pred (a prediction column) and model_dir (a saved model)")
        y_text = as_text(_column(df, label, "baseline data", "label"))
        if y_text.isna().any():
            raise DataError(f"baseline data: label column {label!r} is empty at row {int(np.flatnonzero(y_text.isna())[0])}")
        if model_dir is not None:
            from ..registry._proba import predict_with_confidence
            from ..training import load_model

            trained = load_model(model_dir)
            p_values, c_values = predict_with_confidence(trained, df)
            p_text = as_text(pd.Series(p_values))
            confidence = np.asarray(c_values, dtype=float)
            feature_cols = list(features) if features is not None else list(trained.features)
        else:
            p_text = as_text(_column(df, pred, "baseline data", "pred"))
            confidence = (pd.to_numeric(_column(df, conf, "baseline data", "conf"), errors="coerce").to_numpy(float)
                          if conf is not None else None)
            skip = {label, pred, conf, id_col, ts_col}
            feature_cols = list(features) if features is not None else [c for c in df.columns if c not in skip]
        if p_text.isna().any():
            raise DataError(f"baseline data: prediction is empty at row {int(np.flatnonzero(p_text.isna())[0])}")
        classes = sorted(set(y_text) | set(p_text), key=lambda v: (len(v), v))
        with self.store.session() as s:
            known = s.scalar(select(MonitoredModel.classes).where(MonitoredModel.name == self.model))
        if known is not None:  # codes already logged must keep their meaning: new classes go last
            old = json.loads(known)
            classes = old + [c for c in classes if c not in old]
        return self._store_baseline(df, classes, y_text, p_text, confidence, feature_cols)

    def _store_baseline(self, df: pd.DataFrame, classes: list[str], y_text: pd.Series, p_text: pd.Series,
                        confidence: np.ndarray | None, feature_cols: list[str]) -> BaselineResult:
        y = _codes(y_text, classes, "baseline data", "label")
        p = _codes(p_text, classes, "baseline data", "prediction")
        metrics = classification_metrics(y, p, len(classes))
        bins = self.config.drift.bins
        for f in feature_cols:
            _column(df, f, "baseline data", "features")
        body: dict[str, Any] = {
            "n": int(y.size), "classes": classes, "metrics": metrics,
            "pred_counts": [int(v) for v in np.bincount(p, minlength=len(classes))],
            "features": {f: feature_reference(df[f], bins=bins) for f in feature_cols},
            "confidence": None,
        }
        if confidence is not None and np.isfinite(confidence).any():
            ref = numeric_reference(confidence, bins=bins)
            rng = np.random.default_rng(0)
            by_class = {}
            for c, cls in enumerate(classes):
                v = confidence[(p == c) & np.isfinite(confidence)]
                if v.size > CLASS_CONF_SAMPLE:
                    v = rng.choice(v, CLASS_CONF_SAMPLE, replace=False)
                by_class[cls] = [float(x) for x in v]
            body["confidence"] = {**ref, "by_class": by_class}
        now = time.time()
        with self.store.write() as s:
            m = s.scalar(select(MonitoredModel).where(MonitoredModel.name == self.model))
            if m is None:
                m = MonitoredModel(name=self.model, classes=json.dumps(classes), created_at=now)
                s.add(m)
                s.flush()
            elif json.loads(m.classes) != classes:
                if classes[: len(json.loads(m.classes))] != json.loads(m.classes):
                    raise DataError(f"model {self.model}: classes changed while the baseline was recorded; retry")
                m.classes = json.dumps(classes)
            row = Baseline(model_id=m.id, created_at=now, body=json.dumps(body))
            s.add(row)
            s.flush()
            bid = int(row.id)
        return BaselineResult(self.model, bid, int(y.size), classes, {k: metrics[k] for k in
                              ("accuracy", "precision", "recall", "f1")}, feature_cols, body["confidence"] is not None)

    # ------------------------------------------------------------------ logging

    def log(self, data: Any, *, pred: str = "prediction", id_col: str = "id", ts_col: str | None = "timestamp",
            conf: str | None = None, label: str | None = None, features: Sequence[str] | None = None,
            probe: str | None = None, at: Any = None) -> LogResult:
        """Log production predictions (CSV/Parquet path or DataFrame).

        Parameters
        ----------
        pred, id_col : str
            Prediction and id columns (ids must be unique per model: late labels join on them).
        ts_col : str or None, default "timestamp"
            Epoch seconds or ISO-8601 times; when the column is absent every row gets ``at``
            (default now).
        conf : str, optional
            Confidence column (default: ``confidence`` when present).
        label : str, optional
            True labels, when they are known at logging time.
        features : sequence of str, optional
            Input columns stored for input-drift tests (default: the baseline's features
            that the data has).
        probe : str, optional
            Name of a registered probe set: these rows are probes, not traffic.
        """
        df = as_frame(data, where="predictions")
        mid, classes, base = self.baseline()
        where = "predictions"
        keys = _keys(_column(df, id_col, where, "id_col"), where, "id_col")
        dup = keys.duplicated()
        if dup.any():
            raise DataError(f"{where}: id {keys[dup].iloc[0]!r} appears more than once ({int(dup.sum())} repeats)")
        codes = _codes(_column(df, pred, where, "pred"), classes, where, "prediction")
        if (codes < 0).any():
            raise DataError(f"{where}: prediction column {pred!r} is empty at row {int(np.flatnonzero(codes < 0)[0])}")
        if ts_col is not None and ts_col in df.columns:
            ts = _timestamps(df[ts_col], where)
        else:
            ts = np.full(len(df), parse_time(at, what="at"))
        conf_col = conf if conf is not None else ("confidence" if "confidence" in df.columns else None)
        confidence = (pd.to_numeric(_column(df, conf_col, where, "conf"), errors="coerce").to_numpy(float)
                      if conf_col else np.full(len(df), np.nan))
        labels = _codes(_column(df, label, where, "label"), classes, where, "label") if label else None
        pid = self._probe_id(mid, probe) if probe else None
        feature_cols = list(features) if features is not None else [f for f in base.get("features", {}) if f in df.columns]
        for f in feature_cols:
            _column(df, f, where, "features")
        frame = pd.DataFrame({
            "model_id": mid, "pred_key": keys.to_numpy(), "ts": ts, "pred": codes,
            "conf": np.where(np.isfinite(confidence), confidence, np.nan),
            "label": labels if labels is not None else -1, "probe": pid if pid is not None else -1,
        })
        self._insert(frame, df[feature_cols] if feature_cols else None, mid)
        return LogResult(self.model, len(df), len(df) if pid else 0, float(ts.min()), float(ts.max()), feature_cols)

    def _insert(self, frame: pd.DataFrame, feats: pd.DataFrame | None, mid: int) -> None:
        # Plain tuples through the driver's executemany: building a dict per row through
        # the ORM costs ~10x more, and a day of traffic is easily a million rows.
        def nullable(values: np.ndarray, missing: np.ndarray) -> list[Any]:
            out = values.tolist()
            for i in np.flatnonzero(missing):
                out[i] = None
            return out

        conf = frame["conf"].to_numpy(dtype=float)
        label = frame["label"].to_numpy(dtype=np.int64)
        probe = frame["probe"].to_numpy(dtype=np.int64)
        rows = list(zip([mid] * len(frame), frame["pred_key"].tolist(), frame["ts"].to_numpy(dtype=float).tolist(),
                        frame["pred"].to_numpy(dtype=np.int64).tolist(), nullable(conf, ~np.isfinite(conf)),
                        nullable(label, label < 0), nullable(probe, probe < 0)))
        try:
            with self.store.write() as s:
                _executemany(s, "INSERT INTO monitor_predictions (model_id, pred_key, ts, pred, conf, label, probe) "
                                "VALUES ({})", rows, 7)
                if feats is not None:
                    blob = feats.reset_index(drop=True).assign(__ts=frame["ts"].to_numpy())
                    s.add(FeatureBatch(model_id=mid, ts_min=float(frame["ts"].min()), ts_max=float(frame["ts"].max()),
                                       n_rows=len(frame), data=_parquet(blob)))
        except SAIntegrityError as exc:
            raise DataError(f"model {self.model}: some of these ids were logged before (ids must be unique per "
                            f"model, late labels join on them): {str(exc.orig).splitlines()[0]}") from exc
        except Exception as exc:
            if _unique_violation(exc):
                raise DataError(f"model {self.model}: some of these ids were logged before (ids must be unique per "
                                f"model, late labels join on them): {str(exc).splitlines()[0]}") from exc
            raise

    def labels(self, data: Any, *, id_col: str = "id", label: str = "label") -> LabelResult:
        """Join late true labels to logged predictions by id.

        Raises
        ------
        DataError
            No id matches a logged prediction of this model, or a label is not a known class.
        """
        df = as_frame(data, where="labels")
        mid, classes, _ = self.baseline()
        keys = _keys(_column(df, id_col, "labels", "id_col"), "labels", "id_col")
        codes = _codes(_column(df, label, "labels", "label"), classes, "labels", "label")
        given = pd.DataFrame({"pred_key": keys.to_numpy(), "label": codes}).drop_duplicates("pred_key", keep="last")
        given = given[given["label"] >= 0]
        with self.store.session() as s:
            rows = s.execute(text("SELECT id, pred_key FROM monitor_predictions WHERE model_id = :m"), {"m": mid})
            logged = pd.DataFrame(rows.fetchall(), columns=["id", "pred_key"])
        merged = given.merge(logged, on="pred_key", how="left")
        unmatched = merged["id"].isna()
        if not (~unmatched).any():
            raise DataError(f"labels: none of the {len(given)} ids matches a logged prediction of model "
                            f"{self.model} (e.g. {', '.join(map(repr, given['pred_key'].head(3)))}); "
                            f"check --id and that the predictions were logged")
        hits = merged[~unmatched]
        params = list(zip(hits["label"].astype(np.int64).tolist(), hits["id"].astype(np.int64).tolist()))
        with self.store.write() as s:
            _executemany(s, "UPDATE monitor_predictions SET label = {} WHERE id = {}", params, None)
        if unmatched.any():
            log.warning("labels: %d of %d ids match no logged prediction of model %s", int(unmatched.sum()),
                        len(merged), self.model)
        return LabelResult(self.model, len(given), int(len(hits)), int(unmatched.sum()),
                           [str(k) for k in merged.loc[unmatched, "pred_key"].head(5)])

    # ------------------------------------------------------------------ probes

    def _probe_id(self, mid: int, name: str) -> int:
        with self.store.session() as s:
            pid = s.scalar(select(ProbeSet.id).where(ProbeSet.model_id == mid, ProbeSet.name == name))
            if pid is None:
                known = list(s.scalars(select(ProbeSet.name).where(ProbeSet.model_id == mid)))
                raise NotFoundError(f"model {self.model} has no probe set {name!r} "
                                    f"(registered: {', '.join(known) or 'none'}); add it with: poisonguard monitor probes add")
            return int(pid)

    def register_probes(self, name: str, data: Any, *, label: str | None = None) -> ProbeSetResult:
        """Register a probe set: rows carrying a suspected or simulated trigger.

        The expected class shares of a clean model come from the probes' true labels
        (``label``) or, without them, from the baseline's prediction shares. Probe
        predictions are logged with ``log(..., probe=name)`` or :meth:`run_probes`.
        """
        df = as_frame(data, where="probe set")
        mid, classes, base = self.baseline()
        if label is not None:
            codes = _codes(_column(df, label, "probe set", "label"), classes, "probe set", "label")
            counts = np.bincount(codes[codes >= 0], minlength=len(classes)).astype(float)
            expected_from = "labels"
        else:
            counts = np.asarray(base["pred_counts"], dtype=float)
            expected_from = "baseline"
        expected = counts / max(counts.sum(), 1.0)
        body = {"n_rows": len(df), "expected": [float(v) for v in expected], "expected_from": expected_from,
                "label": label}
        with self.store.write() as s:
            row = s.scalar(select(ProbeSet).where(ProbeSet.model_id == mid, ProbeSet.name == name))
            if row is None:
                s.add(ProbeSet(model_id=mid, name=name, created_at=time.time(), body=json.dumps(body), data=_parquet(df)))
            else:
                row.body, row.data = json.dumps(body), _parquet(df)
        return ProbeSetResult(self.model, name, len(df), dict(zip(classes, map(float, expected))), expected_from)

    def run_probes(self, name: str, model: Any, *, at: Any = None) -> LogResult:
        """Predict a registered probe set with ``model`` (a :class:`TrainedModel` or model dir) and log it."""
        from ..registry._proba import predict_with_confidence
        from ..training import TrainedModel, load_model

        mid, _, _ = self.baseline()
        pid = self._probe_id(mid, name)
        with self.store.session() as s:
            blob = s.scalar(select(ProbeSet.data).where(ProbeSet.id == pid))
        rows = pd.read_parquet(io.BytesIO(blob))
        trained = model if isinstance(model, TrainedModel) else load_model(model)
        labels, conf = predict_with_confidence(trained, rows)
        t = parse_time(at, what="at")
        frame = pd.DataFrame({"id": [f"probe:{name}:{t:.3f}:{i}" for i in range(len(rows))], "prediction": labels,
                              "confidence": conf})
        return self.log(frame, probe=name, at=t, ts_col=None, features=[])

    # ------------------------------------------------------------------ checks

    def _window(self, mid: int, start: float, end: float, base: dict[str, Any]) -> Window:
        # Vectorised in SQL over the covering (model_id, ts, ...) index: class counts are
        # one GROUP BY (a few hundred rows back, whatever the traffic), and confidences,
        # which the rank tests need as values, come as a systematic sample (every k-th row
        # by insertion order) of at most CONF_SAMPLE traffic rows.
        where = "model_id = {m} AND ts >= {m} AND ts < {m}"
        with self.store.session() as s:
            conn = s.connection()
            mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
            cur = conn.connection.dbapi_connection.cursor()  # the driver's cursor: plain tuples, no Row objects
            try:
                cur.execute(f"SELECT pred, COALESCE(label, -1), COALESCE(probe, -1), COUNT(*), COUNT(conf) "
                            f"FROM monitor_predictions WHERE {where.format(m=mark)} GROUP BY 1, 2, 3", (mid, start, end))
                groups = np.array(cur.fetchall(), dtype=np.int64).reshape(-1, 5)
                n_conf = int(groups[groups[:, 2] < 0, 4].sum())
                step = max(1, -(-n_conf // CONF_SAMPLE))
                cur.execute(f"SELECT pred, conf FROM monitor_predictions WHERE {where.format(m=mark)} AND probe IS NULL "
                            f"AND conf IS NOT NULL AND id % {step} = 0", (mid, start, end))
                conf = np.array(cur.fetchall(), dtype=np.float64).reshape(-1, 2)
            finally:
                cur.close()
            feats = None
            if self.config.drift.inputs and base.get("features"):
                blobs = s.execute(select(FeatureBatch.data).where(
                    FeatureBatch.model_id == mid, FeatureBatch.ts_max >= start, FeatureBatch.ts_min < end)).scalars()
                parts = [pd.read_parquet(io.BytesIO(b)) for b in blobs]
                if parts:
                    f = pd.concat(parts, ignore_index=True)
                    feats = f[(f["__ts"] >= start) & (f["__ts"] < end)].drop(columns="__ts")
            probe_sets = {int(p.id): (p.name, np.asarray(json.loads(p.body)["expected"], dtype=float))
                          for p in s.scalars(select(ProbeSet).where(ProbeSet.model_id == mid))}
        counts = groups[:, 3]
        return Window(pred=np.repeat(groups[:, 0], counts), label=np.repeat(groups[:, 1], counts),
                      probe=np.repeat(groups[:, 2], counts), conf_pred=conf[:, 0].astype(np.int64), conf=conf[:, 1],
                      features=feats, probe_sets=probe_sets)

    def check(self, *, window: str | float = "1d", end: Any = None, notify: bool = True) -> CheckResult:
        """Check the window ``[end - window, end)`` against the baseline, store the result and alert.

        Returns a :class:`CheckResult` whose ``status`` is ``ok``, ``alert`` or ``failed``
        (a crash inside the check is stored as *failed*, never as healthy); call
        :meth:`CheckResult.raise_for_status` to turn it into an exit code.

        Raises
        ------
        NotFoundError
            Unknown model.
        DataError
            No prediction was logged in the window.
        """
        seconds = parse_duration(window, what="window")
        t_end = parse_time(end, what="end")
        start = t_end - seconds
        t0 = time.perf_counter()
        mid, classes, base = self.baseline()
        w = self._window(mid, start, t_end, base)
        t_read = time.perf_counter() - t0
        if w.pred.size == 0:
            raise DataError(f"model {self.model}: no predictions logged in the window {iso(start)} .. {iso(t_end)} "
                            f"({window}); log some with: poisonguard monitor log")
        res = CheckResult(self.model, "ok", start, t_end, time.time(), int(np.sum(w.probe < 0)), 0,
                          int(np.sum(w.probe >= 0)))
        try:
            ev = evaluate(base, classes, w, self.config)
        except PoisonguardError:
            raise
        except Exception as exc:  # fail closed: a crashed check is stored and reported as failed
            log.exception("monitor check of model %s crashed", self.model)
            res.status, res.error = "failed", f"{type(exc).__name__}: {exc}"
        else:
            res.metrics, res.checks, res.drift, res.signatures = ev.metrics, ev.checks, ev.drift, ev.signatures
            res.alerts, res.n_labelled = ev.alerts, ev.n_labelled
            res.status = "alert" if ev.alerts else "ok"
        res.timings = {"read_s": round(t_read, 4), "total_s": round(time.perf_counter() - t0, 4)}
        self._record(mid, res, notify=notify)
        return res

    def _channels(self) -> list[Any]:
        specs = self.config.alerts.channels
        chans = [make_channel(c, timeout=self.config.alerts.timeout) for c in specs]
        if not specs and not self._extra_channels:
            chans.append(LogChannel())
        return chans + self._extra_channels

    def _record(self, mid: int, res: CheckResult, *, notify: bool) -> None:
        """Store the check; notify about alerts outside their cooldown; store what each channel did."""
        cooldown = self.config.alerts.cooldown
        with self.store.write() as s:
            row = CheckRow(model_id=mid, at=res.at, window_start=res.window_start, window_end=res.window_end,
                           status=res.status, n_predictions=res.n_predictions, n_labelled=res.n_labelled, body="{}")
            s.add(row)
            s.flush()
            res.check_id = int(row.id)
            # de-duplication: a rule notified (delivered) within the cooldown is not sent again
            recent = set(s.scalars(select(AlertRow.rule).where(
                AlertRow.model_id == mid, AlertRow.delivered.is_(True), AlertRow.at > res.at - cooldown)))
        fresh = [a for a in res.alerts if a.rule not in recent]
        res.suppressed = [a.rule for a in res.alerts if a.rule in recent]
        if notify and fresh:
            context = {"window": f"{iso(res.window_start)} .. {iso(res.window_end)}", "check_id": res.check_id,
                       "status": res.status}
            res.deliveries = deliver(self._channels(), self.model, fresh, context,
                                     retries=self.config.alerts.retries, backoff=self.config.alerts.backoff)
        delivered = bool(res.deliveries) and any(d.ok for d in res.deliveries)
        with self.store.write() as s:
            s.execute(CheckRow.__table__.update().where(CheckRow.id == res.check_id).values(
                body=json.dumps(res.to_dict(), default=_json_default)))
            for a in res.alerts:
                s.add(AlertRow(model_id=mid, check_id=res.check_id, at=res.at, rule=a.rule, severity=a.severity,
                               message=a.message, suppressed=a.rule in recent,
                               delivered=delivered and a.rule not in recent,
                               deliveries=json.dumps([d.to_dict() for d in res.deliveries])))

    # ------------------------------------------------------------------ history

    def history(self, *, limit: int | None = None) -> list[dict[str, Any]]:
        """Stored checks, oldest first (each the JSON of its :class:`CheckResult`)."""
        with self.store.session() as s:
            m = self._model_row(s)
            q = select(CheckRow.body).where(CheckRow.model_id == m.id).order_by(CheckRow.window_end, CheckRow.id)
            bodies = [json.loads(b) for b in s.scalars(q)]
        return bodies[-limit:] if limit else bodies

    def alerts(self) -> list[dict[str, Any]]:
        """Every stored alert of the model, oldest first."""
        with self.store.session() as s:
            m = self._model_row(s)
            rows = s.scalars(select(AlertRow).where(AlertRow.model_id == m.id).order_by(AlertRow.id))
            return [{"check_id": r.check_id, "at": r.at, "rule": r.rule, "severity": r.severity, "message": r.message,
                     "suppressed": r.suppressed, "delivered": r.delivered, "deliveries": json.loads(r.deliveries)}
                    for r in rows]


def _executemany(s: Any, sql: str, rows: list[tuple[Any, ...]], n_values: int | None) -> None:
    """``cursor.executemany`` in the driver's own parameter style (``?`` for SQLite, ``%s`` for psycopg)."""
    conn = s.connection()
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    sql = sql.format(", ".join([mark] * n_values)) if n_values else sql.format(mark, mark)
    conn.exec_driver_sql(sql, rows)


def _unique_violation(exc: BaseException) -> bool:
    msg = str(getattr(exc, "orig", exc)).lower()
    return "unique" in msg or "duplicate key" in msg


def _json_default(v: Any) -> Any:
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, np.ndarray):
        return v.tolist()
    return str(v)
