"""Before Ray: the search space and its first points, which search a run is and its lock, the Optuna sampler and
study, the Ray cluster. Everything here fails early, before any trial, with one line that says what to do."""
