"""`rollout drill APP --region R`: rehearse drain and rollback in one region, for real, and measure them.

A drill is a ReleaseAction with `spec.action: drill`. The controller advances it once per reconcile
tick until it is Done (every step met its target) or Failed; the action's status is the drill's
memory (level-triggered: a restarted controller resumes at the recorded step, with the recorded
start times, so the measured times include any outage).

The checklist, in order; every step records expected, observed, passed and seconds:

1. drain: R's global weight for the app goes to 0; expected: at least the plan's
   `rollback.drainTarget.percent` of R's request rate (the controller's `drain_query`, measured
   before the drain) has moved away within `drainTarget.within`.
2. rollback: R is rolled back to the release before the app's current one with the plan's own
   strategy rollback path (the one an automated rollback uses); expected: the strategy reaches
   RolledBack and R's serving Deployments carry the previous release, within the plan's
   `progressDeadline`.
3. roll forward: R returns to the current release through the same restore path with the current
   release as its target, not through the forward steps: the release already passed its analysis
   in R, and a drained region has no traffic to analyse. Expected: the current release is live in R
   again (reported as Succeeded) within `progressDeadline`.
4. restore: R's weight goes back to 100; expected: R's request rate is back to at least 90% of
   the pre-drill rate within `drainTarget.within`.

A step that misses its target is recorded as failed and the drill goes on, because steps 3 and 4
are also what puts the region back. Two exceptions: when step 3 fails, R is not known to run the
current release, so it is left drained (step 4 says so and how to restore it); and when a new
release of the app starts during the drill, the drill stops, restores R's weight and leaves R to
that release.

Refused (state Rejected, with the reason) before anything changes:
- the app has no release in this namespace, or R is not one of the app's regions;
- a release of the app is in progress (pending, progressing, paused, rolling back): a drill would
  fight it for R;
- there is no earlier release to roll back to, or R does not run the current release (the
  rehearsal must start from the known-good state it returns to);
- another drill of the app is running;
- R's tier is `high` and `spec.force` (`--force`; `spec.full` on actions stored by earlier versions)
  is not set: draining a high-traffic region moves a
  large share of users onto the other regions, which is a capacity test of its own and must be
  asked for explicitly. Canary, low and standard regions may be drilled; the CLI says that the
  drill acts for real.

Layout: `model` (value types, the status the drill keeps), `machine` (pure: `plan_drill`, `advance`
decide from observations), `runner` (`DrillRunner` gathers the observations through `DrillHost`,
drives the strategy one region step per tick with strategies.driver, writes the status, then sets
weights).
"""

from rollout.drill.machine import (
    advance,
    checklist,
    current_and_previous,
    forward_start,
    plan_drill,
    rollback_start,
    serving_release,
)
from rollout.drill.model import (
    BUSY,
    DONE,
    DRAIN,
    FAILED,
    FINAL,
    FORWARD,
    REJECTED,
    RESTORE,
    RESTORE_PERCENT,
    ROLLBACK,
    RUNNING,
    STEPS,
    DrillState,
    Facts,
    Item,
    Observations,
    ReleaseInfo,
    ReleaseRef,
    Setup,
    SetWeight,
    Targets,
    without_none,
)
from rollout.drill.runner import DrillHost, DrillRunner, forced, release_info

__all__ = [
    "BUSY",
    "DONE",
    "DRAIN",
    "FAILED",
    "FINAL",
    "FORWARD",
    "REJECTED",
    "RESTORE",
    "RESTORE_PERCENT",
    "ROLLBACK",
    "RUNNING",
    "STEPS",
    "DrillHost",
    "DrillRunner",
    "DrillState",
    "Facts",
    "Item",
    "Observations",
    "ReleaseInfo",
    "ReleaseRef",
    "SetWeight",
    "Setup",
    "Targets",
    "advance",
    "checklist",
    "current_and_previous",
    "forced",
    "forward_start",
    "plan_drill",
    "release_info",
    "rollback_start",
    "serving_release",
    "without_none",
]
