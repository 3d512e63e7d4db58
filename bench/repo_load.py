"""How long a new commit's validation takes for a large repository, and after a one-app change.

Writes bench/scale.py's generated repository (--apps apps, a Deployment and a Service each, over
--regions regions), then loads it as the controller's workspace does: once cold, then again after
one app's values.yaml changed (a typical push), with the workspace's render memo (config/policies.py
RenderMemo) and without it. No cluster: this is the validation and dry render every commit goes
through before any release starts (push -> first region).

    .venv/bin/python bench/repo_load.py [--apps 1000] [--regions 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: the repository root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.scale import app_names, region_refs, values, write_repository  # noqa: E402
from config.loader import load_repository  # noqa: E402
from config.policies import RenderMemo  # noqa: E402


def timed(root: Path, memo: RenderMemo | None) -> float:
    started = time.perf_counter()
    load_repository(root, memo=memo)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", type=int, default=1000)
    parser.add_argument("--regions", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="repo-load-") as tmp:
        root = Path(tmp).resolve() / "repo"
        write_repository(root, app_names(args.apps), region_refs(args.regions))
        memo = RenderMemo()
        cold = timed(root, memo)
        (root / "apps" / app_names(1)[0] / "values.yaml").write_text(values("9.9.9"))
        with_memo = timed(root, memo)
        without = timed(root, None)
    print(f"cold load (every app rendered in every region): {cold:.2f} s")
    print(f"after a one-app change, with the workspace's memo: {with_memo:.2f} s")
    print(f"after a one-app change, without it (before): {without:.2f} s")
    print(
        f"repo_load: apps={args.apps} regions={args.regions} cold_s={cold:.2f} "
        f"one_change_s={with_memo:.2f} one_change_without_memo_s={without:.2f}"
    )


if __name__ == "__main__":
    main()
