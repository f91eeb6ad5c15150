"""report.json / report.html: built from a run's manifest, checkpoints and shards."""


def stage_names(manifest: dict, stage_type: str) -> list[str]:
    """The names of the pipeline's stages of one type (a pipeline may run a stage type twice)."""
    return [s["name"] for s in manifest["pipeline"]["stages"] if s["stage"] == stage_type]
