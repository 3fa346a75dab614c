"""Running experiments: config validation, the training loop, evaluation, logging and checkpoints."""
