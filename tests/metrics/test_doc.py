"""docs/metrics.md is the contract, rendered: it must not drift from xzctl/metrics/contract.py."""

from __future__ import annotations

import os
from pathlib import Path

from xzctl.metrics import contract as c
from xzctl.metrics.doc import render_metrics_doc

DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"


def test_docs_metrics_md_matches_the_contract() -> None:
    rendered = render_metrics_doc()
    if os.environ.get("XZCTL_UPDATE_GOLDEN"):
        DOC.write_text(rendered, encoding="utf-8")
    assert DOC.read_text(encoding="utf-8") == rendered, "regenerate: XZCTL_UPDATE_GOLDEN=1 pytest tests/metrics"


def test_doc_names_every_metric_and_maps_every_seed_name() -> None:
    text = render_metrics_doc()
    for metric in c.ALL:
        assert f"`{metric.name}" in text
    seeds = {
        "active_devices",
        "http_request_duration_seconds",
        "model_inference_errors_total",
        "cache_hit_rate",
        "processing_queue_size",
    }
    assert {m.seed_name for m in c.ALL if m.seed_name} == seeds
    for seed in seeds:
        assert f"| `{seed}` |" in text
