"""docs/SECURITY.md shows the access matrix generated from the plan, not a hand-typed copy."""

from __future__ import annotations

import re

from shulian.perimeter.service import load_matrix_markdown
from shulian.settings import REPO_ROOT, load_settings


def test_security_doc_matrix_equals_the_plan() -> None:
    doc = (REPO_ROOT / "docs" / "SECURITY.md").read_text(encoding="utf-8")
    found = re.search(r"<!-- matrix:begin -->\n(.*?)\n<!-- matrix:end -->", doc, re.S)
    assert found, "docs/SECURITY.md lost its matrix markers"
    expected = load_matrix_markdown(load_settings())
    assert found.group(1).strip() == expected.strip(), (
        "docs/SECURITY.md is stale: paste the output of `shulian acl matrix` between the markers")
