"""Name resolution for the audit tools: unknown names refused, the nearest ones named."""

from __future__ import annotations

import pytest

from shulian.audit.names import nearest, require_known
from shulian.errors import ConfigError


def test_nearest_names_what_was_meant() -> None:
    known = ["audit.business_licence", "audit.household_change", "audit.birth_certificate"]
    assert nearest("audit.business_license", known)[0] == "audit.business_licence"
    assert nearest("zzz", known) == []


def test_unknown_is_refused_with_every_issue() -> None:
    with pytest.raises(ConfigError) as err:
        require_known("--consumer", "consumer agency", ["taxx", "tax", "qqqqq"],
                      ["tax", "hrss", "civil"])
    text = str(err.value)
    assert "unknown consumer agency 'taxx'; did you mean 'tax'?" in text
    assert "unknown consumer agency 'qqqqq'; known: civil, hrss, tax" in text
    assert len(err.value.issues) == 2


def test_known_passes() -> None:
    require_known("--dataset", "dataset", ["a"], {"a", "b"})
    require_known("--dataset", "dataset", [], set())
