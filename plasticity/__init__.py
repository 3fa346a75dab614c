"""Plasticity interventions (resets, shrink & perturb, Hare & Tortoise, Regen, ...) applied by
one scheduler to named parameter groups of any agent (README "Plasticity interventions"):
groups.py names the parameters, interventions.py and regen.py change them in place,
scheduler.py decides when, diagnostics.py measures dormant units, srank and norms."""
