"""One limits type for both renderers (Jinja in the sandbox, helm/kustomize as tools), one
environment variable for both (config/limits.py)."""

from __future__ import annotations

import pytest

from config import limits, sandbox
from config.limits import JINJA, TOOLS, Limits, MiB
from config.sources import tools


def test_both_renderers_use_the_one_type_and_its_defaults() -> None:
    assert type(sandbox.current_limits()) is Limits and type(tools.current_limits()) is Limits
    assert limits.from_env("") == {"jinja": JINJA, "tools": TOOLS}
    assert (TOOLS.wall_seconds, TOOLS.memory_bytes, TOOLS.output_bytes) == (30.0, 2048 * MiB, 16 * MiB)
    assert (JINJA.wall_seconds, JINJA.memory_bytes, JINJA.output_bytes) == (10.0, 512 * MiB, 8 * MiB)


def test_the_environment_sets_both_renderers_or_one() -> None:
    both = limits.from_env("wall=2.5, output=1")
    assert both["jinja"] == Limits(wall_seconds=2.5, output_bytes=MiB)
    assert both["tools"] == Limits(
        wall_seconds=2.5, cpu_seconds=30, memory_bytes=2048 * MiB, output_bytes=MiB, file_bytes=TOOLS.file_bytes
    )
    one = limits.from_env("memory=256,tools.memory=3072")
    assert one["jinja"].memory_bytes == 256 * MiB and one["tools"].memory_bytes == 3072 * MiB
    assert limits.from_env("jinja.cpu=3")["tools"] == TOOLS


@pytest.mark.parametrize("bad", ["cpu=0", "disk=1", "helm.wall=1", "wall=soon"])
def test_a_bad_setting_is_refused_naming_the_variable(bad: str) -> None:
    with pytest.raises(ValueError, match=f"ROLLOUT_RENDER_LIMITS: '{bad}' is not one of"):
        limits.from_env(bad)


def test_a_change_in_one_renderer_leaves_the_other() -> None:
    before, jinja = tools.current_limits(), sandbox.current_limits()
    with tools.limits(wall_seconds=1.0):
        assert tools.current_limits().wall_seconds == 1.0
        assert sandbox.current_limits() == jinja
    assert tools.current_limits() == before
