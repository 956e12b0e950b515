"""Property tests of the answer parser: any JSON shape is data or UnknownStateError, never a crash."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xzctl.errors import BadInputError, UnknownStateError
from xzctl.prom import PrometheusClient
from xzctl.prom.client import parse_matrix, parse_vector

SETTINGS = settings(max_examples=150, deadline=None, derandomize=True)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=30,
)
# What Prometheus writes as a sample value, and what a broken or hostile server might.
value_text = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["NaN", "+Inf", "-Inf", "1e400", "-1e400", "1" + "0" * 400, "0x10", "", "one"]),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
)
labels = st.dictionaries(st.text(min_size=1, max_size=8), st.text(max_size=8), max_size=3)


def _float_or_none(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


@SETTINGS
@given(data=st.dictionaries(st.sampled_from(["resultType", "result", "x"]), json_values, max_size=3))
def test_any_json_shape_is_samples_or_unknown(data: dict[str, Any]) -> None:
    for parse in (parse_vector, parse_matrix):
        try:
            parsed = parse(data, "test")
        except UnknownStateError:
            continue
        for item in parsed:
            assert all(isinstance(k, str) and isinstance(v, str) for k, v in item.labels.items())


@SETTINGS
@given(rows=st.lists(st.tuples(labels, st.floats(0, 2e9), value_text), max_size=6))
def test_vector_values_read_back_or_the_answer_is_refused(rows: list[tuple[dict[str, str], float, str]]) -> None:
    data = {"resultType": "vector", "result": [{"metric": m, "value": [t, v]} for m, t, v in rows]}
    expected = [_float_or_none(v) for _, _, v in rows]
    duplicate = len({frozenset(m.items()) for m, _, _ in rows}) != len(rows)
    if duplicate or any(e is None for e in expected):
        with pytest.raises(UnknownStateError):
            parse_vector(data, "test")
        return
    samples = parse_vector(data, "test")
    for sample, want, (metric, at, _) in zip(samples, expected, rows, strict=True):
        assert want is not None and sample.labels == metric and sample.timestamp == at
        assert sample.value == want or (math.isnan(sample.value) and math.isnan(want))


@pytest.mark.parametrize("kind", ["matrix", "string", "streams", None, 7])
def test_a_wrong_result_type_is_unknown(kind: object) -> None:
    with pytest.raises(UnknownStateError, match="not an instant vector"):
        parse_vector({"resultType": kind, "result": []}, "test")


def test_non_finite_timestamps_are_malformed() -> None:
    for at in ("NaN", "+Inf", 1e400):
        with pytest.raises(UnknownStateError, match="malformed"):
            parse_vector({"resultType": "vector", "result": [{"metric": {}, "value": [at, "1"]}]}, "test")


@SETTINGS
@given(status=st.integers(100, 599), body=st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()))
def test_any_status_and_body_is_data_or_a_typed_error(status: int, body: bytes) -> None:
    client = PrometheusClient("http://127.0.0.1:9")  # never contacted: _decode is pure
    try:
        data = client._decode(status, body, "up")
    except (UnknownStateError, BadInputError):
        return
    assert 200 <= status < 300 and isinstance(data, dict)
