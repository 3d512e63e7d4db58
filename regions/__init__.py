"""Region model, wave planning, smoke windows and global traffic (drain / restore)."""
