"""What the cluster schedules: drift checks, retraining, the canary, and feedback (traffic replay, labels)."""
