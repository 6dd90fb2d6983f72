"""`reconcile verify`: the evidence reader and the checks end to end."""
