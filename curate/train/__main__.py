"""`python -m curate.train` (the `train` command): run, eval, generate, merge."""

from curate.train.cli import app

app()
