"""`rollout ui`: the live release view in the browser. model.py (pure page values), live.py (the
shared watch), server.py (HTTP, Server-Sent Events, actions), templates/ and static/ (vendored,
no build step)."""
