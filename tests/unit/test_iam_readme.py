"""The README's IAM section is the one generated from the declarations (like the graph)."""

from __future__ import annotations

import re
from pathlib import Path

from abfsm import iam

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_iam_section_is_generated_from_the_declarations() -> None:
    """Between the iam markers: exactly abfsm.iam.readme_block() (`make graph` rewrites it)."""
    text = README.read_text(encoding="utf-8")
    found = re.search(r"<!-- iam:start -->\n(.*?)<!-- iam:end -->", text, flags=re.S)
    assert found, "README.md needs <!-- iam:start --> and <!-- iam:end --> lines"
    assert found.group(1) == iam.readme_block(), "README IAM section is stale: run `make graph`"


def test_the_readme_block_holds_the_standard_policy() -> None:
    """The block's JSON is `iam-policy --environment ENV --elb-name NAME --lock-bucket-name ...`."""
    import json

    from abfsm.context import Settings

    block = iam.readme_block()
    doc = json.loads(block.split("```json\n", 1)[1].split("```", 1)[0])
    assert doc == iam.policy(Settings(environment="ENV", elb_names=["NAME"],
                                      lock_bucket_name="LOCK_BUCKET"))
