"""Every reason code and every named check has words in Chinese and English."""

from __future__ import annotations

import re
from pathlib import Path

from shulian.catalog import elements
from shulian.logic import harmonise
from shulian.logic.policy import WithholdReason
from shulian.logic.reasons import CHECK_WORDS, REASON_WORDS, legend, reason_words
from shulian.logic.result import Reason


def _has_words(words: object) -> None:
    zh, en = words.zh, words.en  # type: ignore[attr-defined]
    assert re.search(r"[\u4e00-\u9fff]", zh), zh
    assert re.search(r"[a-z]{3}", en) and " " in en, en


def test_every_reason_code_has_words() -> None:
    codes = {r.value for r in Reason} | {r.value for r in WithholdReason}
    assert codes <= set(REASON_WORDS), sorted(codes - set(REASON_WORDS))
    for code in codes:
        _has_words(REASON_WORDS[code])
    assert set(REASON_WORDS) == codes, "words for a code that no longer exists"


def test_every_check_named_by_elements_and_mappings_has_words() -> None:
    sources = [elements.__file__, harmonise.__file__]
    named: set[str] = set()
    for path in sources:
        text = Path(path).read_text(encoding="utf-8")
        named |= set(re.findall(r'(?:_fail|_StepFailed)\(\s*"([a-z_]+)"', text))
    assert len(named) >= 10, named
    assert named <= set(CHECK_WORDS), sorted(named - set(CHECK_WORDS))
    for words in CHECK_WORDS.values():
        _has_words(words)


def test_unknown_code_is_named_not_raised_and_legend_is_sorted_distinct() -> None:
    assert "mystery" in reason_words("mystery").en
    assert [c for c, _ in legend(["expired", "empty_value", "expired", ""])] == [
        "empty_value", "expired"]
