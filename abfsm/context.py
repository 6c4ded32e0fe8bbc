"""The data a run carries: the user's settings and the plan decided in inspect.

Both are plain dataclasses that round-trip through JSON, so a run record can hold them and
`abfsm resume` can rebuild them exactly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass
class Settings:
    """Effective flags of a deploy (also what `resume` restores from the record)."""

    environment: str
    elb_names: list[str] = field(default_factory=list)
    target_group_arns: list[str] = field(default_factory=list)
    no_elb_check: bool = False
    lock_bucket_name: str | None = None
    single_asg: bool = False
    dry_run: bool = False
    zero: bool = False
    instance_count: int = 8
    instance_count_match: bool = False
    instance_count_step: int | None = None
    update_timeout: float = 30.0
    health_check_timeout: float = 600.0
    clean_up: bool = False
    rollback_on_failure: bool = False
    wait_for_scale_down: bool = False
    launch_template_version: str | None = None  # a number, $Latest or $Default
    image_id: str | None = None  # a new launch template version with this AMI
    resume_processes: bool = False  # resume suspended Launch/Terminate for the run
    verbose: bool = False
    log_format: str = "auto"
    state_dir: str = ".abfsm"
    spec: str | None = None
    bake_time: float = 0.0  # --bake-time: seconds the bake state watches the new instances
    alarms: list[str] = field(default_factory=list)  # --alarm NAME (repeatable)
    alarm_prefix: str | None = None  # --alarm-prefix PREFIX
    pause_at_approval: bool = False  # --pause-at-approval: exit 4 at an approval state
    region: str | None = None
    endpoint_url: str | None = None
    profile: str | None = None
    # --notify sinks, each as kind:redacted-target (the real targets are never stored),
    # the events the chat-like sinks get, and whether a missing log group is created.
    notify: list[str] = field(default_factory=list)
    notify_on: list[str] = field(default_factory=list)
    notify_create: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Settings:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class Plan:
    """What inspect decided. `None` fields were not decided (yet)."""

    mode: str | None = None  # "ab", "zero" or "single"
    active: str | None = None  # the ASG serving now (drained at the end), if any
    target: str | None = None  # the ASG being filled
    empty_first: str | None = None  # an ASG to empty before filling the target
    active_count: int = 0
    target_count: int = 0
    steps: list[int] = field(default_factory=list)  # absolute desired capacities, in order
    step_index: int = 0
    target_min: int = 0
    target_max: int = 0
    raise_max_to: int | None = None
    load_balancers: list[str] = field(default_factory=list)
    target_groups: list[str] = field(default_factory=list)
    lb_source: str = ""  # "flags", "discovered" or "skipped"
    instance_ids: list[str] = field(default_factory=list)  # target instances InService+Healthy
    deregistration_delays: dict[str, int] = field(default_factory=dict)
    # What gets deployed (--launch-template-version / --image-id; see actions/version.py).
    template_id: str | None = None  # the target's launch template
    template_name: str | None = None
    version_from: str | None = None  # the target's version before the run, as configured
    version_from_number: int | None = None  # ... as a number: what a rollback restores
    version: int | None = None  # the number the target is set to (--image-id: once created)
    image_id: str | None = None  # --image-id: the new version's image
    source_version: int | None = None  # --image-id: the version it is a copy of
    version_description: str | None = None  # names the run: looked for before creating
    latest_version: int | None = None  # the template's latest version at inspect
    mixed_policy: bool = False  # set through the target's MixedInstancesPolicy
    version_set: bool = False  # the target was set to `version` (rollback restores)
    versions: dict[str, str] = field(default_factory=dict)  # what each ASG launches
    # Scaling processes (--resume-processes; see actions/processes.py).
    resume_processes: dict[str, list[str]] = field(default_factory=dict)  # decided in inspect
    resumed: dict[str, list[str]] = field(default_factory=dict)  # resumed, not yet re-suspended

    @property
    def step_desired(self) -> int:
        return self.steps[self.step_index]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Plan:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (data or {}).items() if k in known})
