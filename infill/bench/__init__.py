"""`infill bench ...`: benchmarks that print a table and write JSON (never timed tests)."""
