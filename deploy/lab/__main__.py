"""`python -m deploy.lab ...`: the same command as the `rollout-lab` console script."""

from deploy.lab.cli import main

main()
