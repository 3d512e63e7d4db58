"""`python -m rollout.cli ...`: the same command as the `rollout` console script."""

from rollout.cli import main

main()
