"""Fleet mode: one manifest reconciled on many databases (targets), sharded across replicas.

Data flow: targets.yaml and its generators ──▶ `Target`s (fleet.target; credentials in memory only) ──▶
each target's own run (its manifest files, its secret values, its database) ──▶ one result per target.
"""
