"""Typed models of the rollout repository: regions, app values and rollout plans.

Field names follow Kubernetes conventions (camelCase in YAML). Unknown fields are errors, since a
misspelt key silently ignored is a policy silently not applied.
"""

from __future__ import annotations

import re
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from config.durations import parse_duration
from config.expressions import parse_condition

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")


def _duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(f"{value!r} has no unit; write e.g. {value}s or {value}m")
    return parse_duration(str(value))


def _condition(value: str) -> str:
    parse_condition(value)
    return value


def _percent_or_count(value: int | str) -> int | str:
    if isinstance(value, str) and not re.fullmatch(r"\d{1,3}%", value):
        raise ValueError(f"{value!r} is neither a count nor a percentage; write e.g. 1 or 25%")
    return value


def _name(value: str) -> str:
    if not DNS_LABEL.match(value):
        raise ValueError(f"{value!r} is not a DNS label; use lowercase letters, digits and '-', at most 63")
    return value


def _semver(value: str) -> str:
    if not SEMVER.match(value):
        raise ValueError(f"{value!r} is not a semantic version; write MAJOR.MINOR.PATCH, e.g. 3.2.0")
    return value


Duration = Annotated[timedelta, Field(json_schema_extra={"format": "duration"})]
Name = Annotated[str, AfterValidator(_name)]
SemVer = Annotated[str, AfterValidator(_semver)]
ConditionText = Annotated[str, AfterValidator(_condition)]
IntOrPercent = Annotated[int | str, AfterValidator(_percent_or_count)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class DurationModel(Model):
    """Base for models with duration fields: accepts `30s`-style strings."""

    @field_validator("*", mode="before")
    @classmethod
    def _durations(cls, value: Any, info: Any) -> Any:
        field = cls.model_fields.get(info.field_name)
        if field is not None and field.annotation in (timedelta, timedelta | None) and value is not None:
            return _duration(value)
        return value


# --- regions/*.yaml -------------------------------------------------------------------------


class Tier(StrEnum):
    CANARY = "canary"
    LOW = "low"
    HIGH = "high"
    STANDARD = "standard"


class Region(Model):
    name: Name
    cluster: str = Field(min_length=1, description="kubeconfig context of the region's cluster")
    tier: Tier
    traffic_share: float = Field(alias="trafficShare", gt=0, le=1)
    characteristics: dict[str, str] = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict)

    @property
    def character(self) -> tuple[tuple[str, str], ...]:
        return tuple(sorted(self.characteristics.items()))


# --- apps/<app>/values.yaml -----------------------------------------------------------------


class Image(Model):
    repository: str = Field(min_length=1)
    tag: str | None = None
    digest: str | None = Field(default=None, pattern=r"^sha256:[0-9a-f]{64}$")

    @model_validator(mode="after")
    def _pinned(self) -> Image:
        if self.tag is None and self.digest is None:
            raise ValueError(
                "image has neither tag nor digest; add a tag naming a build (e.g. 1.4.2) or a digest (sha256:...)"
            )
        if self.tag == "latest":
            raise ValueError("the tag 'latest' moves under you; tag images with the version or commit")
        return self


class AppValues(Model):
    version: SemVer = Field(description="the application's semantic version")
    image: Image
    params: dict[str, Any] = Field(default_factory=dict)
    region_overrides: dict[str, dict[str, Any]] = Field(default_factory=dict, alias="regionOverrides")


# --- apps/<app>/rollout.yaml ----------------------------------------------------------------


class Owner(Model):
    team: str = Field(min_length=1)
    contact: str = Field(min_length=1, description="where to reach the on-call (channel, pager, email)")


class RollingStrategy(DurationModel):
    max_surge: IntOrPercent = Field(default="25%", alias="maxSurge")
    max_unavailable: IntOrPercent = Field(default=0, alias="maxUnavailable")
    progress_deadline: timedelta = Field(default=timedelta(minutes=10), alias="progressDeadline")


class BlueGreenStrategy(DurationModel):
    preview_service: bool = Field(default=True, alias="previewService")
    auto_promotion: bool = Field(default=True, alias="autoPromotion")
    scale_down_delay: timedelta = Field(default=timedelta(seconds=30), alias="scaleDownDelay")
    progress_deadline: timedelta = Field(default=timedelta(minutes=10), alias="progressDeadline")
    pre_promotion_analysis: list[str] = Field(default_factory=list, alias="prePromotionAnalysis")


class PauseStep(DurationModel):
    duration: timedelta | None = None  # None: until promoted by a responder


class AnalysisStep(Model):
    checks: list[str] = Field(default_factory=list, description="check names; empty means all")


class CanaryStep(Model):
    set_weight: int | None = Field(default=None, alias="setWeight", ge=0, le=100)
    pause: PauseStep | None = None
    analysis: AnalysisStep | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> CanaryStep:
        given = [name for name in ("set_weight", "pause", "analysis") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("a step must do one thing; make it exactly one of setWeight, pause or analysis")
        return self

    @property
    def kind(self) -> str:
        return "setWeight" if self.set_weight is not None else "pause" if self.pause is not None else "analysis"


class CanaryStrategy(DurationModel):
    traffic_router: Literal["gatewayAPI", "replicas"] = Field(default="replicas", alias="trafficRouter")
    steps: list[CanaryStep] = Field(min_length=1)
    progress_deadline: timedelta = Field(default=timedelta(minutes=10), alias="progressDeadline")


class Strategy(Model):
    rolling: RollingStrategy | None = None
    blue_green: BlueGreenStrategy | None = Field(default=None, alias="blueGreen")
    canary: CanaryStrategy | None = None
    traffic_workload: Name | None = Field(
        default=None,
        alias="trafficWorkload",
        description="canary and blueGreen: the Deployment that takes the traffic (the others roll with the "
        "release); default: the only Deployment, or the one named after the app",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> Strategy:
        given = [n for n in ("rolling", "blue_green", "canary") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("more or less than one strategy given; choose exactly one of rolling, blueGreen or canary")
        return self

    @property
    def kind(self) -> str:
        return "rolling" if self.rolling else "blueGreen" if self.blue_green else "canary"


class AutoSmokeWindow(DurationModel):
    """Twice the mean time-to-detect of past failed releases, clamped to [floor, ceiling]."""

    floor: timedelta
    ceiling: timedelta

    @model_validator(mode="after")
    def _ordered(self) -> AutoSmokeWindow:
        if self.floor > self.ceiling:
            raise ValueError("floor exceeds ceiling; make floor <= ceiling")
        return self


class SmokeWindow(DurationModel):
    fixed: timedelta | None = None
    auto: AutoSmokeWindow | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"fixed": value} if isinstance(value, str | int | float) else value

    @model_validator(mode="after")
    def _one(self) -> SmokeWindow:
        if (self.fixed is None) == (self.auto is None):
            raise ValueError(
                "give either a duration or auto; write a duration (e.g. 10m) or auto: {floor: 5m, ceiling: 1h}"
            )
        return self


class RegionSelector(Model):
    tier: Tier | None = None
    characteristics: dict[str, str] = Field(default_factory=dict)


Identity = Annotated[str, Field(min_length=1, max_length=256)]


class ApprovalFrom(Model):
    users: list[Identity] = Field(default_factory=list, description="Kubernetes user names")
    groups: list[Identity] = Field(default_factory=list, description="groups of the requester's identity")

    @model_validator(mode="after")
    def _someone(self) -> ApprovalFrom:
        if not self.users and not self.groups:
            raise ValueError("names nobody who may approve; list users or groups (from: {groups: [release-managers]})")
        return self


class Approval(DurationModel):
    """A gate before the wave starts: `required` approvals (`rollout approve APP --wave NAME`) from
    distinct allowed identities, optionally not by the commit's author, each valid `expiresAfter`."""

    required: int = Field(default=1, ge=1, le=20)
    from_: ApprovalFrom = Field(alias="from")
    not_by_author: bool = Field(default=False, alias="notByAuthor")
    expires_after: timedelta | None = Field(default=None, alias="expiresAfter")

    @field_validator("expires_after")
    @classmethod
    def _positive(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value <= timedelta(0):
            raise ValueError("expiresAfter must be longer than 0s; write e.g. 8h, or leave it out (never expires)")
        return value

    @model_validator(mode="after")
    def _reachable(self) -> Approval:
        if not self.from_.groups and self.required > len(set(self.from_.users)):
            raise ValueError(
                f"required is {self.required} but only {len(set(self.from_.users))} user(s) may approve and no "
                "group: the gate could never open; list more users or a group, or lower required"
            )
        return self


class Wave(Model):
    name: Name
    regions: list[str] = Field(default_factory=list)
    select: RegionSelector | None = None
    smoke_window: SmokeWindow = Field(alias="smokeWindow")
    max_parallel: int = Field(default=1, alias="maxParallel", ge=1)
    approval: Approval | None = Field(default=None, description="approvals needed before the wave starts")

    @model_validator(mode="after")
    def _chosen(self) -> Wave:
        if not self.regions and self.select is None:
            raise ValueError("the wave names no region; list regions or select them (select: {tier: low})")
        return self


class AutoWaves(Model):
    smoke_window: SmokeWindow = Field(alias="smokeWindow")
    max_parallel: int = Field(default=2, alias="maxParallel", ge=1)


class Judge(Model):
    test: Literal["mann-whitney"] = "mann-whitney"
    confidence: float = Field(default=0.95, gt=0.5, lt=1)
    min_samples: int = Field(default=10, alias="minSamples", ge=3)
    direction: Literal["lowerIsBetter", "higherIsBetter"] = "lowerIsBetter"


class Check(DurationModel):
    name: Name
    query: str = Field(min_length=1, description="PromQL template; variables: see docs/repository.md")
    baseline_query: str | None = Field(default=None, alias="baselineQuery")
    success_condition: ConditionText | None = Field(default=None, alias="successCondition")
    failure_condition: ConditionText | None = Field(default=None, alias="failureCondition")
    judge: Judge | None = None
    interval: timedelta = timedelta(seconds=30)
    count: int = Field(default=5, ge=1)
    failure_limit: int = Field(default=0, alias="failureLimit", ge=0)
    consecutive_error_limit: int = Field(default=3, alias="consecutiveErrorLimit", ge=0)
    inconclusive_limit: int = Field(default=2, alias="inconclusiveLimit", ge=0)
    initial_delay: timedelta | None = Field(default=None, alias="initialDelay")
    on_inconclusive: Literal["pause", "fail"] = Field(default="pause", alias="onInconclusive")

    @model_validator(mode="after")
    def _judged_somehow(self) -> Check:
        if self.judge is None and self.success_condition is None and self.failure_condition is None:
            raise ValueError("the check cannot judge anything; give a successCondition, a failureCondition or a judge")
        if self.judge is not None and self.baseline_query is None:
            raise ValueError("a judge compares with the stable track; add baselineQuery")
        for condition in (self.success_condition, self.failure_condition):
            if condition and self.baseline_query is None and "baseline" in parse_condition(condition).variables:
                raise ValueError(
                    "the condition uses baseline but nothing measures it; add baselineQuery "
                    "or compare with a fixed number"
                )
        return self


class Analysis(Model):
    min_requests: int = Field(
        default=50, alias="minRequests", ge=0, description="fewer requests in a window make it inconclusive"
    )
    checks: list[Check] = Field(default_factory=list, description="empty: the default RED checks")

    @field_validator("checks")
    @classmethod
    def _unique(cls, checks: list[Check]) -> list[Check]:
        names = [c.name for c in checks]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"check names repeat ({', '.join(dupes)}); give each check a unique name")
        return checks


class DrainTarget(DurationModel):
    percent: float = Field(default=99, gt=0, le=100)
    within: timedelta = timedelta(seconds=60)


class RollbackPolicy(Model):
    drain_first: bool = Field(default=True, alias="drainFirst")
    drain_target: DrainTarget = Field(default_factory=DrainTarget, alias="drainTarget")
    quarantine: bool = True
    revert_commit: bool = Field(default=False, alias="revertCommit")
    revert_branch: str | None = Field(
        default=None,
        alias="revertBranch",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$",
        description="push the revert to this branch (for a pull request) instead of the tracked one",
    )

    @field_validator("revert_branch")
    @classmethod
    def _branch_name(cls, name: str | None) -> str | None:
        if name and (".." in name or "//" in name or name.endswith(("/", ".", ".lock"))):
            raise ValueError(f"{name!r} is not a branch name git accepts; write e.g. rollout/reverts")
        return name


NotificationEvent = Literal[
    "started",
    "promoted",
    "failed",
    "rolledBack",
    "paused",
    "drained",
    "succeeded",
    "frozen",
    "freezeOverride",
    "awaitingApproval",
    "waitingForDependency",
]
# What asks for a person by default: a release stopped (failed, paused, frozen, awaiting approval),
# traffic moved, or a freeze overridden (an exception someone should see).
DEFAULT_NOTIFIED: tuple[NotificationEvent, ...] = (
    "failed",
    "rolledBack",
    "paused",
    "drained",
    "frozen",
    "freezeOverride",
    "awaitingApproval",
)


NotificationFormat = Literal["generic", "slack", "teams"]
Severity = Literal["info", "warning", "critical"]


class Notification(Model):
    webhook: str = Field(pattern=r"^https?://", description="URL receiving a JSON POST per event")
    events: list[NotificationEvent] = Field(default_factory=lambda: list(DEFAULT_NOTIFIED))
    format: NotificationFormat = Field(
        default="generic",
        description="generic: the signed JSON; slack: an incoming-webhook message; teams: an Adaptive Card",
    )
    min_severity: Severity = Field(
        default="info",
        alias="minSeverity",
        description="events below it are not sent (info < warning < critical); failures always are",
    )
    secret_env: str | None = Field(
        default=None, alias="secretEnv", description="no longer accepted: the operator maps signing keys per app"
    )

    @field_validator("secret_env")
    @classmethod
    def _no_secret_env(cls, value: str | None) -> str | None:
        if value is not None:  # a repository must not pick which of the controller's secrets signs
            raise ValueError(
                "secretEnv is not accepted: the repository cannot choose the signing key. Remove "
                "it; the operator maps a key to this app (rollout controller --notify-key APP=FILE)"
            )
        return value


# --- the manifest source (rollout.yaml `source`): Jinja templates, a Helm chart or Kustomize ---

PLACEHOLDERS = ("{region}", "{tier}")  # substituted in source paths per region


def _app_path(value: str) -> str:
    """A path inside the app's folder: relative, no '..', only the known placeholders."""
    if not value or value.startswith("/") or ".." in value.replace("\\", "/").split("/"):
        raise ValueError(f"{value!r} leaves the app folder; write a path relative to apps/<app>/ without '..'")
    rest = value
    for placeholder in PLACEHOLDERS:
        rest = rest.replace(placeholder, "")
    if "{" in rest or "}" in rest:
        raise ValueError(f"{value!r} has an unknown placeholder; use only {' and '.join(PLACEHOLDERS)}")
    return value


AppPath = Annotated[str, AfterValidator(_app_path)]


class JinjaSource(Model):
    """apps/<app>/manifests/*.yaml(.j2), rendered with the template context (the default source)."""


class HelmSource(Model):
    """A chart kept in the app's folder, rendered with `helm template` (the pinned Helm)."""

    chart: AppPath = Field(default="chart", description="chart folder (Chart.yaml, values.yaml, templates/)")
    values_files: list[AppPath] = Field(
        default_factory=list,
        alias="valuesFiles",
        description="values files after the chart's values.yaml, in order; {region} and {tier} are substituted",
    )
    ignore_missing_values_files: bool = Field(
        default=False,
        alias="ignoreMissingValuesFiles",
        description="skip a values file that does not exist for a region instead of failing",
    )
    release_name: Name | None = Field(default=None, alias="releaseName", description="default: the app's name")

    @field_validator("chart")
    @classmethod
    def _chart_in_its_own_folder(cls, value: str) -> str:
        if value.replace("\\", "/").strip("/").replace("./", "") in ("", "."):  # the app folder itself
            raise ValueError(
                f"{value!r} is the app's folder, whose values.yaml is the release's (version, image), "
                "not the chart's; move Chart.yaml, values.yaml, templates/ (and charts/) into "
                "apps/<app>/chart/ and write chart: chart"
            )
        return value


class KustomizeSource(Model):
    """A kustomization in the app's folder, built with `kustomize build` (the pinned Kustomize)."""

    path: AppPath = Field(default="overlays/{region}", description="the kustomization folder built per region")
    region_patch: bool = Field(
        default=True,
        alias="regionPatch",
        description="add the controller's patch: the image of values.yaml (with the region's registry) "
        "and params.replicas on every Deployment and StatefulSet",
    )


class Source(Model):
    jinja: JinjaSource | None = None
    helm: HelmSource | None = None
    kustomize: KustomizeSource | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Source:
        given = [n for n in ("jinja", "helm", "kustomize") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError(
                f"{'no' if not given else ' and '.join(given)} source given; "
                "choose exactly one of jinja: {}, helm: {chart: ...} or kustomize: {path: ...}"
            )
        return self

    @property
    def kind(self) -> Literal["jinja", "helm", "kustomize"]:
        return "helm" if self.helm else "kustomize" if self.kustomize else "jinja"


class HookPolicy(DurationModel):
    """How a release's hook Jobs run (config/hooks.py; docs/repository.md#hooks)."""

    timeout: Duration = Field(default=timedelta(minutes=5), description="default per hook Job")
    pre_rollback_failure: Literal["continue", "block"] = Field(
        default="continue",
        alias="preRollbackFailure",
        description="continue: the rollback goes on with a Warning; block: the region ends Failed",
    )
    post_promote_failure: Literal["fail", "continue"] = Field(
        default="fail", alias="postPromoteFailure", description="fail: the region fails (and rolls back)"
    )


PruneKind = Literal["Namespace", "CustomResourceDefinition", "PersistentVolumeClaim"]


class Prune(Model):
    """rollout.yaml `prune`: objects a release no longer renders are deleted once it passed a region
    (strategies/prune.py, docs/repository.md "Pruning")."""

    enabled: bool = True
    kinds: list[PruneKind] = Field(
        default_factory=list,
        description="kinds never pruned unless listed here: Namespace, CustomResourceDefinition, PersistentVolumeClaim",
    )
    max_deletions: int = Field(
        default=20, ge=1, alias="maxDeletions", description="a prune deleting more stops and asks a responder"
    )


class Plan(Model):
    app: Name
    namespace: Name | None = None
    owner: Owner
    playbook: str = Field(pattern=r"^https?://", description="link responders open first")
    strategy: Strategy
    waves: Literal["auto"] | list[Wave]
    auto_waves: AutoWaves | None = Field(default=None, alias="autoWaves")
    allow_non_canary_first_wave: bool = Field(default=False, alias="allowNonCanaryFirstWave")
    exclude_regions: list[str] = Field(default_factory=list, alias="excludeRegions")
    analysis: Analysis = Field(default_factory=Analysis)
    rollback: RollbackPolicy = Field(default_factory=RollbackPolicy)
    hooks: HookPolicy = Field(default_factory=HookPolicy)
    notifications: list[Notification] = Field(default_factory=list)
    prune: Prune = Field(default_factory=Prune)
    supersede: Literal["unstarted", "never"] = Field(
        default="unstarted", description="a newer commit replaces an older release that has not started"
    )
    depends_on: list[Name] = Field(
        default_factory=list,
        alias="dependsOn",
        description="apps whose release must pass a region before this app's release starts there",
    )
    source: Source = Field(
        default_factory=lambda: Source(jinja=JinjaSource()),
        description="where the manifests come from; default: Jinja templates in manifests/",
    )

    @model_validator(mode="after")
    def _auto_needs_defaults(self) -> Plan:
        if self.waves == "auto" and self.auto_waves is None:
            raise ValueError("waves: 'auto' has no defaults; add autoWaves: {smokeWindow: ..., maxParallel: ...}")
        if isinstance(self.waves, list) and not self.waves:
            raise ValueError("waves: the list is empty; list at least one wave, or write waves: auto")
        return self

    @property
    def target_namespace(self) -> str:
        return self.namespace or self.app
