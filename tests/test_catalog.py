"""Model catalog, user overrides, epochs heuristic and cost."""
from __future__ import annotations

import json

import numpy as np
import pytest

from ftui.core import catalog
from ftui.core.stats import describe, histogram


@pytest.mark.parametrize("n, epochs", [(5, 20), (10, 10), (16, 6), (33, 3), (100, 3), (8333, 3), (8334, 2),
                                       (30000, 1), (1, 25)])
def test_auto_epochs_is_the_cookbook_heuristic(n, epochs):
    assert catalog.auto_epochs(n) == epochs


def test_estimate_caps_each_example_at_the_context():
    m = catalog.resolve("gpt-3.5-turbo")
    e = catalog.estimate(np.array([100, 20000, 300]), m, 2)
    assert e.billing_tokens_per_epoch == 100 + 16385 + 300
    assert e.billed_tokens == 2 * e.billing_tokens_per_epoch
    assert e.usd == pytest.approx(e.billed_tokens * 8 / 1e6)
    assert e.over_context == 1 and e.truncated_tokens == 20000 - 16385


def test_hourly_model_has_no_token_price():
    e = catalog.estimate(np.array([10] * 20), catalog.resolve("o4-mini"))
    assert e.usd is None and "hour" in e.note


def test_catalog_entries_are_complete():
    for m in catalog.catalog():
        assert m.encoding in ("o200k_base", "cl100k_base")
        assert m.methods and m.source and m.as_of
        assert (m.price_per_1m_tokens is not None) or (m.price_per_hour is not None) or m.id == "gpt-4-0613"


def test_user_file_overrides_and_extends(tmp_path, monkeypatch):
    f = tmp_path / "models.json"
    f.write_text(json.dumps({"models": [
        {"id": "gpt-4.1-mini-2025-04-14", "price_per_1m_tokens": 4.0},
        {"id": "my-model", "encoding": "cl100k_base", "training_context": 1000, "price_per_1m_tokens": 1.0,
         "methods": ["supervised"]},
    ]}))
    monkeypatch.setenv("FTUI_MODELS", str(f))
    assert catalog.resolve("gpt-4.1-mini").price_per_1m_tokens == 4.0
    assert catalog.resolve("gpt-4.1-mini").training_context == 65536  # merged, not replaced
    assert catalog.resolve("my-model").encoding == "cl100k_base"
    f.write_text("{not json")
    with pytest.raises(catalog.CatalogError, match=str(f)):
        catalog.resolve("gpt-4.1-mini")


def test_unknown_model_gets_a_best_effort_entry():
    m = catalog.resolve("some-llama")
    assert not m.known and m.price_per_1m_tokens is None


def test_describe_labels_p10_p90():
    d = describe(np.arange(1, 101))
    assert (d.min, d.max, d.median, d.p10, d.p90) == (1, 100, 50.5, pytest.approx(10.9), pytest.approx(90.1))
    assert describe([]) is None


def test_histogram_bins():
    h = histogram(np.array([1, 2, 2, 3, 100]), bins=4)
    assert h.counts.sum() == 5 and len(h.edges) == 5
    hl = histogram(np.array([1, 10, 100, 1000]), bins=3, log=True)
    assert list(hl.counts) == [1, 1, 2]
