"""The Git-side schema: plans, regions, manifests; loading, validation and rendering."""
