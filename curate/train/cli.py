"""The `train` command line: `train run CONFIG`, `train eval ADAPTER`, `train generate ADAPTER --prompt ...`,
`train merge ADAPTER --out DIR`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from curate.errors import CurateError
from curate.failures import CurateGroup

app = typer.Typer(
    cls=CurateGroup,
    help="LoRA/QLoRA fine-tuning on curated shards.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)


def _fail(exc: Exception) -> None:
    from rich.markup import escape

    console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
    raise typer.Exit(2)


@app.command()
def run(
    config: Annotated[Path, typer.Argument(help="Training config YAML, e.g. configs/train/default.yaml.")],
    shards: Annotated[
        str | None, typer.Option(help="Train on these shards instead of the config's (e.g. shards://mine@latest).")
    ] = None,
) -> None:
    """Train a LoRA adapter on the configured shards, evaluate it, and check that it stops."""
    from curate.train.config import load_config
    from curate.train.run import run as train_run

    try:
        cfg, path = load_config(config)
        if shards:
            cfg = cfg.model_copy(update={"shards": shards})
        report = train_run(cfg, path)
    except CurateError as exc:
        _fail(exc)
    loss, stop = report["eval_loss"], report["stop_check"]
    print(
        f"trained {report['steps']} steps on {report['lineage']['name']}@{report['lineage']['version']} in "
        f"{report['seconds']} s ({report['device']})"
    )
    print(
        f"eval loss {loss['before']} -> {loss['after']}; stop rate "
        + (f"{stop['stop_rate']:.0%} of {stop['samples']}" if stop["stop_rate"] is not None else "not measured")
    )
    task = stop.get("task") or {}
    if task.get("kind") == "classification":
        print(f"task: accuracy {task['accuracy']:.1%}, macro-F1 {task['macro_f1']:.3f} over {task['classes']} classes")
    elif task:
        print(f"task: ROUGE-L F1 {task['rouge_l_f1']:.3f} against the reference answers")
    if stop.get("warning"):
        console.print(f"[bold yellow]WARNING:[/] {stop['warning']}")
    print(
        f"adapter:  {report['adapter']}\nreport:   {Path(cfg.output_dir) / 'train_report.json'}\nloss:     "
        f"{report['loss_curve']}"
    )


@app.command("eval")
def eval_(
    adapter: Annotated[Path, typer.Argument(help="An adapter folder written by `train run`.")],
    shards: Annotated[
        str | None, typer.Option(help="Evaluate on these shards instead of the ones it was trained on.")
    ] = None,
) -> None:
    """Eval loss and the stop check of a saved adapter on a validation split."""
    from curate.train.run import evaluate

    try:
        result = evaluate(adapter, shards)
    except CurateError as exc:
        _fail(exc)
    print(json.dumps(result, indent=2))


def _load(adapter: Path):
    from curate.train.run import load_adapter

    try:
        return load_adapter(adapter)
    except CurateError as exc:
        _fail(exc)


@app.command()
def generate(
    adapter: Annotated[Path, typer.Argument(help="An adapter folder written by `train run`.")],
    prompt: Annotated[str, typer.Option("--prompt", "-p", help="The user message.")],
    max_new_tokens: Annotated[int, typer.Option(help="Generation limit.")] = 128,
) -> None:
    """Answer one user message with the adapter (ChatML, greedy, stops at <|im_end|>)."""
    from curate.train.chat import IM_END, chatml

    model, tokenizer = _load(adapter)
    ids = tokenizer(
        chatml([{"role": "user", "content": prompt}], add_generation_prompt=True),
        add_special_tokens=False,
        return_tensors="pt",
    )["input_ids"]
    out = model.generate(
        input_ids=ids,
        max_new_tokens=max_new_tokens,
        do_sample=False,
        eos_token_id=tokenizer.convert_tokens_to_ids(IM_END),
        pad_token_id=tokenizer.pad_token_id,
    )
    print(tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True))


@app.command()
def merge(
    adapter: Annotated[Path, typer.Argument(help="An adapter folder written by `train run`.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the merged model and tokenizer.")],
    force: Annotated[bool, typer.Option("--force", help="Write into --out even if it is not empty.")] = False,
) -> None:
    """Merge the LoRA weights into the base (a de-quantised copy for a 4-bit base), check the logits and the EOS,
    and save model + tokenizer + merge_report.json (for vLLM, llama.cpp, ...)."""
    from curate.train.merge import merge as merge_adapter

    try:
        report = merge_adapter(adapter, out, force=force)
    except CurateError as exc:
        _fail(exc)
    print(json.dumps({"merged": str(out), "logits": report["logits"], "eos": report["eos"]}, indent=2))
