"""`python -m train` (the `train` command): run, eval, generate, merge."""

from train.cli import app

app()
