"""The generated IAM policy, proven against moto's IAM enforcement (tests/support/iam_moto.py).

Every mode succeeds as a user holding exactly its generated policy; removing any one action
makes one of the mode's runs fail with AccessDenied naming what was refused; S3 scoping holds.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from abfsm import iam, runner
from tests.fakes import FakeClock
from tests.support import iam_moto
from tests.support.aws_env import capacities
from tests.support.iam_moto import BUCKET, MODES, Mode, Result

IDS = [m.name for m in MODES]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[iam_moto.Lab]:
    """One moto for the module; every run gets an environment of its own."""
    with iam_moto.lab(tmp_path_factory.mktemp("iam")) as the_lab:
        yield the_lab


@pytest.mark.parametrize("mode", MODES, ids=IDS)
def test_every_mode_succeeds_with_exactly_its_generated_policy(mode: Mode,
                                                              lab: iam_moto.Lab) -> None:
    """Each scenario of the mode ends as it does with full rights, no call refused."""
    for scenario in mode.scenarios:
        result = lab.run(mode, scenario)
        assert (result.exit_code, result.status, result.denied) == (*scenario.expect, None), \
            f"{scenario.name}: {result}"


@pytest.mark.parametrize("mode", MODES, ids=IDS)
def test_removing_any_action_makes_a_run_of_the_mode_refused(mode: Mode,
                                                            lab: iam_moto.Lab) -> None:
    """For every action of the mode's policy, one scenario without it is refused naming it."""
    rows = lab.minimality(mode)
    assert rows, "the policy allows no action"
    wrong = [(action, scenario, str(result)) for action, scenario, result in rows
             if result.denied is None or result.denied[0] != _refused_as(action)]
    assert wrong == []


def _refused_as(action: str) -> str:
    """The call AWS refuses when `action` is missing: s3:ListBucket is only what turns a
    GetObject of an absent key from 403 into 404, so the GetObject is what is refused."""
    return "s3:GetObject" if action == "s3:ListBucket" else action


def test_a_policy_for_qa_cannot_write_prod_lock(lab: iam_moto.Lab) -> None:
    """qa's policy running a prod deploy: PutObject prod.lock refused, prod's ASGs untouched."""
    mode = MODES[0]
    qa = lab.settings(mode)
    prod = lab.settings(mode)
    names = [f"{prod.environment}-a", f"{prod.environment}-b"]
    before = capacities(lab.h.admin, names)
    lab.h.set_policy(iam.policy(qa, "deploy"))
    with iam_moto.enforced():
        refused = iam_moto._result(runner.deploy(prod, services=lab.h.services(),
                                                 clock=FakeClock()))
        ok = iam_moto._result(runner.deploy(qa, services=lab.h.services(), clock=FakeClock()))
    after = capacities(lab.h.admin, names)
    lock = f"arn:aws:s3:::{BUCKET}/{prod.environment}.lock"
    assert refused == Result(1, "failed", ("s3:PutObject", lock))
    assert after == before
    assert ok == Result(0, "done")
