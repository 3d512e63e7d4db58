"""Release controller: release model, promotion, Git sync, analysis, CLI."""
