"""Demo projects shipped with Quorum."""
