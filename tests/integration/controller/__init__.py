"""`reconcile --watch`: the controller's cycles, backoff and the soak run."""
