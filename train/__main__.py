"""`python -m train` (the `train` command): run, generate, merge."""

from train.cli import app

app()
