"""What a workflow file may hold, declared: one msgspec Struct per mapping of the format.

These describe the file as written (optional keys, shorthands, the seed's five keys); :mod:`.workflow`
turns a converted file into the core's :class:`~emitter.core.spec.Workflow`, filling in defaults and
checking what no single value shows (sums, the graph). The reference is ``docs/workflow-format.md``.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from msgspec import UNSET, Meta, Struct, UnsetType, field

from ..core.limits import MAX_CALLS, MAX_FACTOR, MAX_LOG_VALUE, MAX_MS, MAX_NAME, MAX_PARAM, MAX_VALUE

__all__ = [
    "DIST",
    "ConstantSpec",
    "DefaultsSpec",
    "DistSpec",
    "EndpointSpec",
    "ErrorsSpec",
    "ExponentialSpec",
    "LognormalSpec",
    "MixtureSpec",
    "NormalSpec",
    "OverridesSpec",
    "ParamSpec",
    "ServiceSpec",
    "UniformSpec",
    "UserTypeSpec",
    "WorkflowFile",
]

Probability = Annotated[float, Meta(ge=0, le=1, extra={"range": "probability"})]
Positive = Annotated[float, Meta(gt=0, le=MAX_VALUE)]
NonNegative = Annotated[float, Meta(ge=0, le=MAX_VALUE)]
Millis = Annotated[float, Meta(gt=0, le=MAX_MS)]
Factor = Annotated[float, Meta(gt=0, le=MAX_FACTOR)]
Name = Annotated[str, Meta(min_length=1, max_length=MAX_NAME)]
Row = dict[str, Probability] | None  # a transitions row; empty (or null) is a dead end unless an exit point


class _Spec(Struct, forbid_unknown_fields=True, kw_only=True):
    pass


# ------------------------------------------------------------------ distributions


class DistSpec(_Spec, kw_only=True, tag_field="dist"):
    """A distribution in ms or s; ``weight`` only means something inside a mixture."""

    WHAT: ClassVar[str] = "a distribution such as {dist: lognormal, p50: 80, p99: 400}"
    TAG_ERROR: ClassVar[str] = (
        "unknown distribution {value} (expected one of: constant, uniform, exponential, lognormal, normal, mixture)"
    )

    weight: Annotated[float, Meta(gt=0, le=MAX_VALUE)] | UnsetType = UNSET


class ConstantSpec(DistSpec, kw_only=True, tag="constant"):
    MISSING: ClassVar[str] = "missing for a constant distribution"
    value: Positive


class UniformSpec(DistSpec, kw_only=True, tag="uniform"):
    MISSING: ClassVar[str] = "missing for a uniform distribution"
    min: NonNegative
    max: Positive


class ExponentialSpec(DistSpec, kw_only=True, tag="exponential"):
    MISSING: ClassVar[str] = "missing for a exponential distribution"
    mean: Positive


class LognormalSpec(DistSpec, kw_only=True, tag="lognormal"):
    """Exactly one parameterisation: p50 + p99, mean + stddev, mean + sigma, or mu + sigma."""

    p50: Positive | UnsetType = UNSET
    p99: Positive | UnsetType = UNSET
    mean: Positive | UnsetType = UNSET
    stddev: Positive | UnsetType = UNSET
    mu: Annotated[float, Meta(le=MAX_LOG_VALUE)] | UnsetType = UNSET
    sigma: Annotated[float, Meta(ge=0, le=10)] | UnsetType = UNSET


class NormalSpec(DistSpec, kw_only=True, tag="normal"):
    MISSING: ClassVar[str] = "missing for a normal distribution"
    mean: Positive
    stddev: NonNegative
    min: NonNegative | UnsetType = UNSET


COMPONENT = ConstantSpec | UniformSpec | ExponentialSpec | LognormalSpec | NormalSpec


class MixtureSpec(DistSpec, kw_only=True, tag="mixture"):
    components: list[COMPONENT]


DIST = Positive | ConstantSpec | UniformSpec | ExponentialSpec | LognormalSpec | NormalSpec | MixtureSpec
"""A distribution field: a bare number (a constant) or one of the kinds."""


# ------------------------------------------------------------------ endpoints and services


class ErrorsSpec(_Spec, kw_only=True):
    WHAT: ClassVar[str] = "a mapping like {rate: 0.02, codes: {500: 0.5, 503: 0.5}}"

    rate: Probability | UnsetType = UNSET
    codes: dict[Any, Probability] | UnsetType = UNSET


class ParamSpec(_Spec, kw_only=True):
    WHAT: ClassVar[str] = "a mapping like {min: 1, max: 500} or {values: [a, b]}"

    min: Annotated[int, Meta(ge=0, le=MAX_PARAM)] = 1
    max: Annotated[int, Meta(ge=0, le=MAX_PARAM)] | UnsetType = UNSET
    values: list[Any] | UnsetType = UNSET
    weights: list[NonNegative] | UnsetType = UNSET
    source: Any = field(default=UNSET, name="from")


class EndpointSpec(_Spec, kw_only=True):
    NONE_IS_EMPTY: ClassVar[bool] = True

    method: Any = UNSET
    service: Any = UNSET
    latency: DIST | UnsetType = UNSET
    errors: ErrorsSpec | UnsetType = UNSET
    params: dict[str, ParamSpec] | UnsetType = UNSET
    query: dict[str, ParamSpec] | UnsetType | None = UNSET
    success_status: Annotated[int, Meta(ge=100, le=599)] | UnsetType = UNSET
    timeout_ms: Millis | UnsetType = UNSET


class ServiceSpec(_Spec, kw_only=True):
    NONE_IS_EMPTY: ClassVar[bool] = True

    calls: list[Name] = field(default_factory=list)
    latency: DIST | UnsetType = UNSET
    version: Annotated[str | int | float, Meta(extra={"what": "a version string"})] = "1.0.0"
    timeout_ms: Millis | UnsetType = UNSET


class DefaultsSpec(_Spec, kw_only=True):
    errors: ErrorsSpec | UnsetType = UNSET
    latency_sigma: Annotated[float, Meta(ge=0, le=10)] | UnsetType = UNSET
    success_status: Annotated[int, Meta(ge=100, le=599)] | UnsetType = UNSET


# ------------------------------------------------------------------ user types and the file


class OverridesSpec(_Spec, kw_only=True):
    entry_points: dict[str, Probability] | UnsetType = UNSET
    transitions: dict[str, Row] | UnsetType = UNSET
    think_time: DIST | UnsetType = UNSET
    latency_factor: Factor | UnsetType = UNSET


class UserTypeSpec(_Spec, kw_only=True):
    weight: Probability
    overrides: OverridesSpec = field(default_factory=OverridesSpec)


class WorkflowFile(_Spec, kw_only=True):
    """A workflow file. The seed format's five keys; everything else optional."""

    WHAT: ClassVar[str] = "a mapping of workflow keys (name, entry_points, transitions, ...)"

    entry_points: dict[str, Probability]
    transitions: dict[str, Row]
    exit_points: list[Name]
    name: Name | UnsetType = UNSET
    description: str = ""
    avg_response_times: dict[str, Positive] = field(default_factory=dict)
    endpoints: dict[str, EndpointSpec] = field(default_factory=dict)
    services: dict[str, ServiceSpec] = field(default_factory=dict)
    think_time: DIST | UnsetType = UNSET
    user_types: (
        Annotated[
            dict[str, Probability | UserTypeSpec],
            Meta(extra={"what": "a mapping of user type -> weight or {weight, overrides}"}),
        ]
        | UnsetType
    ) = UNSET
    max_calls: Annotated[int, Meta(ge=1, le=MAX_CALLS)] | UnsetType = UNSET
    defaults: DefaultsSpec = field(default_factory=DefaultsSpec)
