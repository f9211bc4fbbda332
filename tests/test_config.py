"""Scan configuration: --set values are checked against the detectors' declared settings (issue 8, item 10)."""

from __future__ import annotations

import pytest

from poisonguard.config import check_settings, load_scan_config, parse_set_options
from poisonguard.errors import ConfigError


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("knn_label.n_neighbors=abc", "knn_label.n_neighbors='abc' must be a number (int), got str"),
        ("iforest.random_state=abc", "iforest.random_state='abc' must be a number (int), got str"),
        ("knn_label.n_neighbors=2.5", "knn_label.n_neighbors=2.5 must be a whole number"),
        ("knn_label.n_neighbors=true", "knn_label.n_neighbors=True must be a number (int), got bool"),
        ("knn_label.noise_rate=NaN", "knn_label.noise_rate=nan must be a finite number"),
        ("knn_label.noise_rate=Infinity", "knn_label.noise_rate=inf must be a finite number"),
        ("confident.method=3", "confident.method=3 must be text"),
        ('iforest.n_estimators=[1, 2]', "iforest.n_estimators=[1, 2] must be a number (int), got list"),
    ],
)
def test_wrong_typed_settings_name_the_setting_and_value(item, message):
    with pytest.raises(ConfigError) as info:
        check_settings(parse_set_options([item]))
    assert message in str(info.value)


def test_well_typed_settings_pass_and_are_normalised():
    got = check_settings(parse_set_options(
        ["knn_label.n_neighbors=15.0", "knn_label.noise_rate=0", "iforest.random_state=null", "confident.method=margin"]
    ))
    assert got == {"knn_label": {"n_neighbors": 15, "noise_rate": 0.0}, "iforest": {"random_state": None},
                   "confident": {"method": "margin"}}
    assert type(got["knn_label"]["n_neighbors"]) is int and type(got["knn_label"]["noise_rate"]) is float


def test_unknown_names_are_left_for_the_registry_to_report():
    assert check_settings({"nope": {"x": 1}, "knn_label": {"bogus": "a"}}) == {"nope": {"x": 1}, "knn_label": {"bogus": "a"}}


def test_toml_config_settings_are_checked_too(tmp_path):
    p = tmp_path / "scan.toml"
    p.write_text('detectors = ["knn_label"]\n[settings.knn_label]\nn_neighbors = "many"\n')
    with pytest.raises(ConfigError, match="knn_label.n_neighbors='many'"):
        check_settings(load_scan_config(p)["settings"])


def test_config_that_is_not_utf8_is_a_config_error(tmp_path):
    p = tmp_path / "scan.json"
    p.write_bytes(b'{"detectors": ["\xff"]}')
    with pytest.raises(ConfigError, match="cannot read config"):
        load_scan_config(p)
