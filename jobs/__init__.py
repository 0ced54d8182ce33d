"""Entry points: the `fraud` CLI and the jobs the cluster schedules (drift, retraining, canary)."""
