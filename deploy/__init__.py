"""Everything to run the controller in a cluster, and the local lab."""
