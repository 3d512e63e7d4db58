"""Wave planning: which regions a release reaches, in which order, with which smoke window.

Pure functions over the plan and the region metadata. `auto` orders regions the way the
practice says: canary tier first, then low-traffic regions, then high-traffic regions whose
character (locale, client mix, ...) has already been proven, then each new character on its own,
then the rest in parallel.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from config.schema import Plan, Region, SmokeWindow, Tier, Wave


@dataclass(frozen=True)
class PlannedWave:
    name: str
    regions: tuple[str, ...]
    smoke_window: SmokeWindow
    max_parallel: int


@dataclass(frozen=True)
class WaveProblem:
    field: str
    problem: str
    fix: str


def plan_waves(plan: Plan, regions: Mapping[str, Region]) -> list[PlannedWave]:
    """The waves a release of `plan` goes through. Assumes wave_problems() found nothing."""
    eligible = {name: r for name, r in regions.items() if name not in plan.exclude_regions}
    if plan.waves == "auto":
        assert plan.auto_waves is not None
        return _auto_waves(eligible, plan.auto_waves.smoke_window, plan.auto_waves.max_parallel)
    return [PlannedWave(w.name, tuple(_members(w, eligible)), w.smoke_window, w.max_parallel) for w in plan.waves]


def wave_problems(plan: Plan, regions: Mapping[str, Region]) -> list[WaveProblem]:
    problems = [
        WaveProblem(f"excludeRegions[{i}]", f"unknown region {name!r}", _known(regions))
        for i, name in enumerate(plan.exclude_regions)
        if name not in regions
    ]
    if plan.waves == "auto":
        return problems
    eligible = {name: r for name, r in regions.items() if name not in plan.exclude_regions}
    seen: dict[str, str] = {}
    for i, wave in enumerate(plan.waves):
        for j, name in enumerate(wave.regions):
            if name not in regions:
                problems.append(WaveProblem(f"waves[{i}].regions[{j}]", f"unknown region {name!r}", _known(regions)))
        members = _members(wave, eligible)
        if wave.select is not None and not _selected(wave, eligible):
            problems.append(
                WaveProblem(f"waves[{i}].select", "selects no region", "loosen the selector or list the regions")
            )
        for name in members:
            if name in seen:
                problems.append(
                    WaveProblem(
                        f"waves[{i}]",
                        f"region {name!r} is already in wave {seen[name]!r}",
                        "put each region in exactly one wave",
                    )
                )
            seen.setdefault(name, wave.name)
    for name in sorted(set(eligible) - set(seen)):
        problems.append(
            WaveProblem(
                "waves",
                f"region {name!r} is in no wave",
                "add it to a wave, or to excludeRegions to keep this app out of it",
            )
        )
    first = _members(plan.waves[0], eligible)
    if first and not plan.allow_non_canary_first_wave:
        non_canary = [n for n in first if eligible[n].tier != Tier.CANARY]
        if non_canary:
            problems.append(
                WaveProblem(
                    "waves[0]",
                    f"the first wave holds non-canary region(s) {', '.join(non_canary)}",
                    "start with canary-tier regions, or set allowNonCanaryFirstWave: true",
                )
            )
    return problems


def _known(regions: Mapping[str, Region]) -> str:
    return f"use one of {', '.join(sorted(regions))}"


def _selected(wave: Wave, regions: Mapping[str, Region]) -> list[str]:
    sel = wave.select
    if sel is None:
        return []
    return [
        n
        for n, r in regions.items()
        if (sel.tier is None or r.tier == sel.tier)
        and all(r.characteristics.get(k) == v for k, v in sel.characteristics.items())
    ]


def _members(wave: Wave, regions: Mapping[str, Region]) -> list[str]:
    listed = [n for n in wave.regions if n in regions]
    extra = _by_traffic(regions[n] for n in _selected(wave, regions) if n not in listed)
    return listed + extra


def _by_traffic(regions: Iterable[Region]) -> list[str]:
    """Smallest traffic first: the cheaper region to be wrong in goes first."""
    return [r.name for r in sorted(regions, key=lambda r: (r.traffic_share, r.name))]


def _auto_waves(regions: Mapping[str, Region], smoke: SmokeWindow, max_parallel: int) -> list[PlannedWave]:
    remaining = dict(regions)
    waves: list[PlannedWave] = []

    def take(name: str, chosen: list[Region], parallel: int) -> None:
        if chosen:
            waves.append(PlannedWave(name, tuple(_by_traffic(chosen)), smoke, parallel))
            for region in chosen:
                remaining.pop(region.name)

    take("canary", [r for r in remaining.values() if r.tier == Tier.CANARY], max_parallel)
    take("low-traffic", [r for r in remaining.values() if r.tier == Tier.LOW], max_parallel)
    proven = {r.character for r in regions.values() if r.name not in remaining}
    take("high-traffic", [r for r in remaining.values() if r.tier == Tier.HIGH and r.character in proven], max_parallel)
    for region in sorted(remaining.values(), key=lambda r: (-r.traffic_share, r.name)):
        if region.character not in proven:
            proven.add(region.character)
            take(f"character-{region.name}", [region], 1)
    take("rest", list(remaining.values()), max_parallel)
    return waves
