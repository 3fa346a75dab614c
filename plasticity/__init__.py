"""Plasticity interventions (resets, shrink & perturb, Hare & Tortoise, ...) applied by one
scheduler to named parameter groups of any agent. Not built yet: see the plasticity issue."""
