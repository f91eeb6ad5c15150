from curate.cli import app

app()
