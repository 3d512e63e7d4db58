"""The local lab: real control planes per region, Prometheus, traffic simulator, Git server."""
