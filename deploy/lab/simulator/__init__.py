"""The lab's traffic simulator: synthetic requests per region, app and version, routed by the live
weights in the clusters (docs/conventions.md), exported as Prometheus metrics.

Run it as `python -m deploy.lab.simulator --config FILE`; drive it with `SimulatorClient`.
"""
