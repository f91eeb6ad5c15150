from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from curate.catalog import Catalog
from curate.config import load_pipeline
from curate.engine import run_pipeline

REPO = Path(__file__).resolve().parents[1]
RULES = REPO / "rules"


@pytest.fixture(scope="session", autouse=True)
def _session_home(tmp_path_factory):
    """Module- and session-scoped fixtures run before the per-test home below: give them a
    throwaway catalog too, so no test ever registers anything in the user's own catalog."""
    import os

    old = os.environ.get("CURATE_HOME")
    os.environ["CURATE_HOME"] = str(tmp_path_factory.mktemp("session_home"))
    yield
    if old is None:
        os.environ.pop("CURATE_HOME", None)
    else:
        os.environ["CURATE_HOME"] = old


@pytest.fixture(autouse=True)
def curate_home(tmp_path_factory, monkeypatch) -> Path:
    """Every test gets its own catalog; the demo corpus cache is shared to save time."""
    home = tmp_path_factory.mktemp("curate_home")
    monkeypatch.setenv("CURATE_HOME", str(home))
    demo_cache = tmp_path_factory.getbasetemp() / "shared_demo"
    (home / "demo").parent.mkdir(parents=True, exist_ok=True)
    demo_cache.mkdir(exist_ok=True)
    (home / "demo").symlink_to(demo_cache, target_is_directory=True)
    return home


def default_stages() -> list[dict]:
    return [
        {"stage": "normalize", "rules": str(RULES / "normalize/default.yaml")},
        {"stage": "langid", "rules": str(RULES / "langid/default.yaml")},
        {"stage": "quality", "rules": str(RULES / "quality/default.yaml")},
    ]


def write_pipeline(folder: Path, inputs: list[dict], stages: list[dict] | None = None, **extra) -> Path:
    spec = {
        "name": extra.pop("name", "t"),
        "inputs": inputs,
        "stages": default_stages() if stages is None else stages,
        "workers": 1,
        **extra,
    }
    path = folder / "pipeline.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def run(path: Path, out: Path, **kwargs):
    return run_pipeline(load_pipeline(path), out_dir=out, catalog=Catalog(), **kwargs)


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """One curated run of a 2,000-record demo corpus, shared by read-only tests."""
    import os

    folder = tmp_path_factory.mktemp("demo_run")
    home = folder / "home"
    old = os.environ.get("CURATE_HOME")
    os.environ["CURATE_HOME"] = str(home)
    try:
        path = write_pipeline(
            folder,
            [{"demo": {"records": 2000, "seed": 5}, "columns": ["domain"]}],
            name="demo",
            batch_size=300,
            output={"shard_rows": 700},
        )
        result = run(path, folder / "out")
    finally:
        if old is None:
            os.environ.pop("CURATE_HOME")
        else:
            os.environ["CURATE_HOME"] = old
    result.home = home
    return result
