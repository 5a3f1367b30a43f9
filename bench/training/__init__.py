"""Budgeted training (docs/training.md): the `train:` schema (spec), paper recipes (recipes),
optimizer/schedule/EMA math (optim, lamb_torch), checkpoints both backends read (checkpoint),
and the run itself (run). Importing this package imports neither torch nor jax.
"""
