"""`reconcile export`: the live state back as a manifest."""
