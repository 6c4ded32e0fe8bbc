"""Every decision of inspect.decide(): pure, with hand-built Groups, no AWS."""

from __future__ import annotations

from typing import Any

import pytest

from abfsm.actions import ACTIONS
from abfsm.actions.base import Run
from abfsm.actions.inspect import decide, plan_lines, planned_calls
from abfsm.aws.autoscaling import Group, Instance
from abfsm.context import Plan, Settings
from abfsm.errors import EXIT_REFUSED, Refused
from abfsm.spec import Spec, load_spec

ELB = "qa-public"
TG = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/qa-tg0/0123456789abcdef"


def group(name: str, desired: int = 0, *, min_size: int = 0, max_size: int = 10,
          lbs: tuple[str, ...] = (ELB,), tgs: tuple[str, ...] = ()) -> Group:
    instances = tuple(Instance(f"i-{name}-{n}", "InService", "Healthy") for n in range(desired))
    return Group(name, min_size, max_size, desired, instances, lbs, tgs)


def pair(a: int = 0, b: int = 0, **kw: Any) -> dict[str, Group]:
    return {"qa-a": group("qa-a", a, **kw), "qa-b": group("qa-b", b, **kw)}


def settings(**kw: Any) -> Settings:
    return Settings(environment=kw.pop("environment", "qa"), **kw)


def planned(s: Settings, plan: Plan, spec: Spec | None = None) -> Run:
    """A Run in inspect with `plan` decided, for the dry-run walk (no AWS, no lock)."""
    spec = spec or load_spec(s.spec, ACTIONS)
    return Run(settings=s, plan=plan, aws=None, clock=None, lock=None, record=None,  # type: ignore[arg-type]
               spec=spec, state="inspect")


# --- active / target ------------------------------------------------------------------------

def test_a_populated_targets_b():
    """qa-a serving -> active qa-a, target qa-b, trigger deploy."""
    plan, trigger = decide(settings(), pair(a=4))
    assert (plan.active, plan.target, plan.active_count, trigger) == ("qa-a", "qa-b", 4, "deploy")
    assert plan.mode == "ab" and plan.empty_first is None


def test_b_populated_targets_a():
    """qa-b serving -> active qa-b, target qa-a."""
    plan, trigger = decide(settings(), pair(b=3))
    assert (plan.active, plan.target, plan.active_count, trigger) == ("qa-b", "qa-a", 3, "deploy")


def test_none_populated_targets_a_with_no_active():
    """Both empty -> target qa-a, no active ASG, nothing to drain."""
    plan, trigger = decide(settings(), pair())
    assert (plan.active, plan.target, plan.active_count, trigger) == (None, "qa-a", 0, "deploy")


def test_desired_zero_with_instances_left_counts_as_populated():
    """An ASG at desired 0 that still has instances is populated (still serving)."""
    groups = pair()
    groups["qa-b"] = Group("qa-b", 0, 10, 0, (Instance("i-1", "InService", "Healthy"),), (ELB,))
    plan, _ = decide(settings(), groups)
    assert (plan.active, plan.target) == ("qa-b", "qa-a")


# --- counts and steps ------------------------------------------------------------------------

def test_default_count_is_8_in_one_step():
    """No count flags -> 8 instances, one step straight to 8."""
    plan, _ = decide(settings(), pair(a=2))
    assert (plan.target_count, plan.steps, plan.step_index) == (8, [8], 0)


def test_instance_count_sets_the_target_count():
    """--instance-count 5 -> target count 5, regardless of the active ASG's size."""
    plan, _ = decide(settings(instance_count=5), pair(a=2))
    assert (plan.target_count, plan.steps) == (5, [5])


def test_instance_count_match_uses_the_active_desired():
    """--instance-count-match -> target count = the active ASG's desired capacity."""
    plan, _ = decide(settings(instance_count_match=True), pair(b=6))
    assert (plan.target, plan.target_count, plan.steps) == ("qa-a", 6, [6])


def test_instance_count_match_with_nothing_active_is_refused():
    """--instance-count-match with both ASGs empty has nothing to match: refused (exit 3)."""
    with pytest.raises(Refused, match="--instance-count-match") as err:
        decide(settings(instance_count_match=True), pair())
    assert err.value.exit_code == EXIT_REFUSED


@pytest.mark.parametrize(("count", "step", "steps"), [
    (8, 3, [3, 6, 8]),
    (8, 4, [4, 8]),
    (8, 8, [8]),
    (8, 1, [1, 2, 3, 4, 5, 6, 7, 8]),
    (5, 2, [2, 4, 5]),
])
def test_steps_are_absolute_capacities_ending_at_the_count(count, step, steps):
    """--instance-count N --instance-count-step S -> S, 2S, ... then N (never above N)."""
    plan, _ = decide(settings(instance_count=count, instance_count_step=step), pair(a=2))
    assert plan.steps == steps


def test_count_above_max_size_raises_max_explicitly():
    """A count above the target's MaxSize is planned as a MaxSize raise, not sent blindly."""
    plan, _ = decide(settings(instance_count=12), pair(a=2, max_size=10))
    assert (plan.raise_max_to, plan.target_max, plan.steps) == (12, 10, [12])


def test_count_within_max_size_raises_nothing():
    """A count that fits MaxSize plans no MaxSize change."""
    plan, _ = decide(settings(instance_count=10), pair(a=2, max_size=10))
    assert plan.raise_max_to is None


def test_target_min_size_is_recorded():
    """The target's MinSize is kept in the plan (scale must not go below it)."""
    groups = pair(a=2)
    groups["qa-b"] = Group("qa-b", 3, 10, 0, (), (ELB,))
    plan, _ = decide(settings(instance_count=4), groups)
    assert (plan.target_min, plan.target_max) == (3, 10)


# --- both populated, clean-up ----------------------------------------------------------------

def test_both_populated_is_refused_naming_both_asgs():
    """Both ASGs with instances and no --clean-up -> Refused (exit 3) naming qa-a and qa-b."""
    with pytest.raises(Refused) as err:
        decide(settings(), pair(a=4, b=2))
    assert err.value.exit_code == EXIT_REFUSED
    assert "qa-a" in str(err.value) and "qa-b" in str(err.value)
    assert "--clean-up" in str(err.value)


def test_clean_up_empties_the_asg_serving_fewer_first():
    """--clean-up: qa-a serves 4, qa-b 1 -> empty qa-b first, then fill it; qa-a stays active."""
    plan, trigger = decide(settings(clean_up=True), pair(a=4, b=4), {"qa-a": 4, "qa-b": 1})
    assert trigger == "empty_first"
    assert (plan.empty_first, plan.target, plan.active) == ("qa-b", "qa-b", "qa-a")


def test_clean_up_picks_by_serving_not_by_name():
    """--clean-up: qa-b serving more -> qa-a is the one emptied."""
    plan, trigger = decide(settings(clean_up=True), pair(a=4, b=4), {"qa-a": 0, "qa-b": 3})
    assert (trigger, plan.empty_first, plan.target, plan.active) == ("empty_first", "qa-a", "qa-a", "qa-b")


def test_clean_up_tie_is_refused():
    """--clean-up with both serving the same number is refused (exit 3), naming both."""
    with pytest.raises(Refused, match="qa-a and qa-b both serve 2") as err:
        decide(settings(clean_up=True), pair(a=4, b=4), {"qa-a": 2, "qa-b": 2})
    assert err.value.exit_code == EXIT_REFUSED


def test_clean_up_with_no_serving_counts_is_a_tie():
    """--clean-up with nothing serving in either (0 vs 0) is refused rather than guessed."""
    with pytest.raises(Refused):
        decide(settings(clean_up=True), pair(a=1, b=1), None)


def test_clean_up_with_one_populated_is_a_plain_deploy():
    """--clean-up changes nothing when only one ASG is populated."""
    plan, trigger = decide(settings(clean_up=True), pair(a=4))
    assert (trigger, plan.empty_first, plan.target) == ("deploy", None, "qa-b")


# --- zero ------------------------------------------------------------------------------------

def test_zero_with_nothing_populated_is_nothing_to_do():
    """--zero with both empty -> nothing_to_do (exit 0, nothing changed)."""
    plan, trigger = decide(settings(zero=True), pair())
    assert (trigger, plan.mode, plan.active) == ("nothing_to_do", "zero", None)


def test_zero_with_one_populated_zeroes_it():
    """--zero with qa-b populated -> zero, active qa-b with its count, no target."""
    plan, trigger = decide(settings(zero=True), pair(b=5))
    assert (trigger, plan.active, plan.active_count, plan.target) == ("zero", "qa-b", 5, None)


def test_zero_with_both_populated_is_refused():
    """--zero with both populated will not guess: Refused naming both."""
    with pytest.raises(Refused) as err:
        decide(settings(zero=True), pair(a=1, b=2))
    assert "qa-a" in str(err.value) and "qa-b" in str(err.value)


# --- single ASG ------------------------------------------------------------------------------

def test_single_asg_empty_deploys_into_env():
    """--single-asg with ASG `qa` empty -> deploy into qa, nothing to empty first."""
    plan, trigger = decide(settings(single_asg=True, instance_count=3), {"qa": group("qa")})
    assert (trigger, plan.mode, plan.target, plan.empty_first, plan.steps) == (
        "deploy", "single", "qa", None, [3])


def test_single_asg_populated_is_emptied_first():
    """--single-asg with ASG `qa` populated -> empty_first, empty_first == target == qa."""
    plan, trigger = decide(settings(single_asg=True), {"qa": group("qa", 2)})
    assert (trigger, plan.empty_first, plan.target) == ("empty_first", "qa", "qa")
    assert plan.active is None  # nothing left to drain after the refresh


def test_single_asg_zero():
    """--single-asg --zero: populated -> zero it; empty -> nothing to do."""
    plan, trigger = decide(settings(single_asg=True, zero=True), {"qa": group("qa", 2)})
    assert (trigger, plan.active) == ("zero", "qa")
    _, trigger = decide(settings(single_asg=True, zero=True), {"qa": group("qa")})
    assert trigger == "nothing_to_do"


# --- load balancers --------------------------------------------------------------------------

def test_named_elb_not_attached_is_refused_naming_the_attachments():
    """--elb-name other: refused, naming the ELB and what the target ASG is attached to."""
    with pytest.raises(Refused) as err:
        decide(settings(elb_names=["qa-other"]), pair(a=2))
    text = str(err.value)
    assert "qa-b is not attached to qa-other" in text and f"ELB {ELB}" in text
    assert err.value.exit_code == EXIT_REFUSED


def test_named_target_group_not_attached_is_refused():
    """--target-group-arn of a group the target ASG lacks: refused, naming it by short name."""
    with pytest.raises(Refused, match="not attached to targetgroup/qa-tg0"):
        decide(settings(target_group_arns=[TG]), pair(a=2))


def test_named_elb_attached_is_used():
    """--elb-name matching the attachment -> waited for, source 'flags'."""
    plan, _ = decide(settings(elb_names=[ELB]), pair(a=2))
    assert (plan.load_balancers, plan.target_groups, plan.lb_source) == ([ELB], [], "flags")


def test_no_flags_discovers_the_target_asgs_attachments():
    """No LB flags -> the target ASG's own ELB and target groups are used (not the active's)."""
    groups = {"qa-a": group("qa-a", 2, lbs=("qa-old",)),
              "qa-b": group("qa-b", 0, lbs=(ELB,), tgs=(TG,))}
    plan, _ = decide(settings(), groups)
    assert (plan.load_balancers, plan.target_groups, plan.lb_source) == ([ELB], [TG], "discovered")


def test_no_flags_and_no_attachments_waits_for_nothing():
    """No flags, nothing attached -> no load balancer to wait for, said so."""
    plan, _ = decide(settings(), pair(a=2, lbs=()))
    assert (plan.load_balancers, plan.target_groups, plan.lb_source) == ([], [], "none attached")


def test_no_elb_check_skips_the_load_balancers():
    """--no-elb-check -> nothing waited for, even though the ASG is attached."""
    plan, _ = decide(settings(no_elb_check=True), pair(a=2, tgs=(TG,)))
    assert (plan.load_balancers, plan.target_groups) == ([], [])
    assert plan.lb_source.startswith("skipped")


# --- dry-run plan ----------------------------------------------------------------------------

def test_planned_calls_list_every_mutating_call_in_order():
    """Dry-run calls: lock, one UpdateAutoScalingGroup per step, drain of the old ASG, release."""
    s = settings(instance_count=8, instance_count_step=3)
    plan, trigger = decide(s, pair(a=4))
    calls = planned_calls(planned(s, plan), trigger)
    assert calls[0].startswith("local lock file")
    assert calls[1:4] == [f"autoscaling UpdateAutoScalingGroup qa-b DesiredCapacity={n}" for n in (3, 6, 8)]
    assert calls[4] == "autoscaling UpdateAutoScalingGroup qa-a DesiredCapacity=0 MinSize=0"
    assert calls[5].startswith("release the lock") and len(calls) == 6


def test_planned_calls_with_a_bucket_name_the_s3_writes():
    """With --lock-bucket-name the plan names the conditional S3 PutObject of the lock."""
    s = settings(lock_bucket_name="locks")
    plan, trigger = decide(s, pair(a=4))
    calls = planned_calls(planned(s, plan), trigger)
    assert calls[0] == "s3 PutObject locks/qa.lock (If-None-Match: *)"
    assert "DeleteObject" in calls[-1]


def test_planned_calls_include_max_size_raise_and_empty_first():
    """Clean-up plan empties first; a count above MaxSize raises MaxSize in the scale call."""
    s = settings(clean_up=True, instance_count=12)
    plan, trigger = decide(s, pair(a=4, b=4), {"qa-a": 4, "qa-b": 0})
    calls = planned_calls(planned(s, plan), trigger)
    assert calls[1] == "autoscaling UpdateAutoScalingGroup qa-b DesiredCapacity=0 MinSize=0"
    assert calls[2] == "autoscaling UpdateAutoScalingGroup qa-b DesiredCapacity=12 MaxSize=12"
    assert calls[3] == "autoscaling UpdateAutoScalingGroup qa-a DesiredCapacity=0 MinSize=0"


def test_planned_max_size_is_in_every_step_the_scale_call_sends_it():
    """The plan's later steps carry MaxSize too, as scale sends it on every step (issue 8 #19:
    the old plan dropped it after the first step)."""
    s = settings(instance_count=12, instance_count_step=6)
    plan, trigger = decide(s, pair(a=4))
    calls = planned_calls(planned(s, plan), trigger)
    assert calls[1:3] == ["autoscaling UpdateAutoScalingGroup qa-b DesiredCapacity=6 MaxSize=12",
                          "autoscaling UpdateAutoScalingGroup qa-b DesiredCapacity=12 MaxSize=12"]


def test_a_min_size_above_the_first_step_is_lowered_then_restored():
    """Target MinSize 4, steps 2 -> 4 -> 6: MinSize 2 with the first step, back to 4 with the
    second, kept at 4 after (issue 8 #19: the old plan showed no MinSize change)."""
    s = settings(instance_count=6, instance_count_step=2)
    plan, trigger = decide(s, {"qa-a": group("qa-a", 4), "qa-b": group("qa-b", 0, min_size=4)})
    calls = planned_calls(planned(s, plan), trigger)
    assert calls[1:4] == [
        "autoscaling UpdateAutoScalingGroup qa-b DesiredCapacity=2 MinSize=2",
        "autoscaling UpdateAutoScalingGroup qa-b DesiredCapacity=4 MinSize=4",
        "autoscaling UpdateAutoScalingGroup qa-b DesiredCapacity=6 MinSize=4"]


def test_planned_calls_for_zero_only_drain():
    """--zero plans no scale-up, only the drain of the active ASG."""
    s = settings(zero=True)
    plan, trigger = decide(s, pair(b=3))
    calls = planned_calls(planned(s, plan), trigger)
    assert [c for c in calls if c.startswith("autoscaling")] == [
        "autoscaling UpdateAutoScalingGroup qa-b DesiredCapacity=0 MinSize=0"]


def test_plan_lines_show_asgs_counts_steps_lbs_and_calls():
    """The printed plan names active and target ASGs, counts, steps, LBs and the calls."""
    s = settings(instance_count=6, instance_count_step=2)
    groups = pair(a=4)
    plan, trigger = decide(s, groups)
    text = "\n".join(plan_lines(planned(s, plan), trigger, groups))
    assert "active ASG    qa-a (desired 4, 4 instance(s)) -> drained to 0" in text
    assert "target ASG    qa-b (desired 0, 0 instance(s)) -> 6 instance(s)" in text
    assert "desired capacity 2 -> 4 -> 6" in text
    assert f"wait for      {ELB} (attached to qa-b)" in text
    assert "would call:" in text and "UpdateAutoScalingGroup qa-b DesiredCapacity=6" in text


# --- the plan walks the spec ----------------------------------------------------------------

def _spec_without_drain(tmp_path: Any) -> Spec:
    import yaml

    from abfsm.spec import packaged_spec_path

    data = yaml.safe_load(packaged_spec_path().read_text(encoding="utf-8"))
    del data["states"]["drain"]
    for t in data["transitions"]:
        if t["dest"] == "drain":  # healthy and zero end the run instead
            t["dest"] = "done"
    data["transitions"] = [t for t in data["transitions"] if t["trigger"] != "drained"]
    path = tmp_path / "no-drain.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return load_spec(path, ACTIONS)


def test_the_plan_walks_the_given_spec_not_the_packaged_one(tmp_path):
    """A spec without a drain state plans no UpdateAutoScalingGroup of the old ASG, and the
    plan says the old ASG is left as it is (the old plan always listed the drain call)."""
    s = settings(instance_count=4)
    groups = pair(a=4)
    plan, trigger = decide(s, groups)
    run = planned(s, plan, _spec_without_drain(tmp_path))
    calls = planned_calls(run, trigger)
    assert not any("qa-a" in c for c in calls)
    assert calls[1] == "autoscaling UpdateAutoScalingGroup qa-b DesiredCapacity=4"
    text = "\n".join(plan_lines(run, trigger, groups))
    assert "qa-a (desired 4, 4 instance(s)) -> left as it is" in text
    assert "path          inspect -> scale -> wait-instances -> wait-elb -> bake -> done" in text


@pytest.mark.parametrize("flags", [{}, {"instance_count_step": 2, "instance_count": 12},
                                   {"zero": True}, {"clean_up": True}, {"single_asg": True}],
                         ids=["ab", "steps-max", "zero", "clean-up", "single"])
def test_every_planned_call_is_declared_by_its_state(flags):
    """Each mutating call the plan lists is among the declared calls of the state that makes
    it (the IAM policy is generated from the same declarations)."""
    from abfsm.actions.planning import declared_action, walk

    s = settings(**flags)
    if flags.get("single_asg"):
        groups = {"qa": group("qa", 2)}
        plan, trigger = decide(s, groups)
    elif flags.get("clean_up"):
        plan, trigger = decide(s, pair(a=4, b=4), {"qa-a": 4, "qa-b": 0})
    elif flags.get("zero"):
        plan, trigger = decide(s, pair(b=3))
    else:
        plan, trigger = decide(s, pair(a=4))
    run = planned(s, plan)
    walked = walk(run, trigger)
    assert walked.steps
    for state, line in walked.steps:
        declared = {f"{c.service} {c.api}" for c in
                    declared_action(run, state).aws_calls(s, run.spec.states[state].params)
                    if c.mutating}
        assert " ".join(line.split()[:2]) in declared, (state, line)
