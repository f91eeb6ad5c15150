"""One module per stage, each a `Stage` (curate.stages.base); the registry of names is curate.stages.registry."""
