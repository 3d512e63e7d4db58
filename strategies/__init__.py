"""Per-region strategies (rolling, blue/green, canary) and in-region traffic routers."""
