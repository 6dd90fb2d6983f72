"""The long-running loop: the --watch controller, its lifecycle and HTTP endpoints, pipeline metrics, notifications."""
