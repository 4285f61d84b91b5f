"""After Tune: the choice on validation H (or re-evaluated over new seeds), the test measurement, the result."""
