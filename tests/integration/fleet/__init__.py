"""Many targets: the fleet's CLI, runner, controller, shards, generated targets, targets.yaml."""
