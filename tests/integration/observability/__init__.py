"""What the controller tells: Prometheus metrics and webhook notifications."""
