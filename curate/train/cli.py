"""The `train` command line: `train run CONFIG`, `train eval ADAPTER`, `train generate ADAPTER --prompt ...`,
`train merge ADAPTER --out DIR`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from curate.errors import CurateError
from curate.failures import GATES, CurateGroup

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
    output_dir: Annotated[
        Path | None,
        typer.Option(
            "--output-dir",
            "-o",
            help="Write the adapter and reports here (default: a new folder under $CURATE_HOME/train).",
        ),
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Exit 4 when the stop check fails (the adapter and report are kept).")
    ] = False,
) -> None:
    """Train a LoRA adapter on the configured shards (a classification head on a labelled text set), evaluate
    it, and check that it answers well: a failed stop check is a warning, or exit 4 with --strict."""
    from curate.train.config import load_config
    from curate.train.run import run as train_run

    try:
        cfg, path = load_config(config)
        update = {"shards": shards} if shards else {}
        if output_dir:
            update["output_dir"] = str(output_dir)
        report = train_run(cfg.model_copy(update=update), path, echo=lambda line: console.print(line, highlight=False))
    except CurateError as exc:
        _fail(exc)
    loss = report["eval_loss"]
    print(
        f"trained {report['task']}: {report['steps']} steps on {report['lineage']['name']}@"
        f"{report['lineage']['version']} in {report['seconds']} s ({report['device']})"
    )
    print(f"eval loss {loss['before']} -> {loss['after']} on {report['evaluation']['records']} validation records")
    if report["task"] == "classification":
        _show_classification(report["classification"])
    else:
        if report["task"] == "dpo":
            before, after = report["dpo"]["before"], report["dpo"]["after"]
            print(
                f"reward accuracy {before.get('rewards/accuracies')} -> {after.get('rewards/accuracies')}, margin "
                f"{before.get('rewards/margins')} -> {after.get('rewards/margins')} (beta {report['dpo']['beta']})"
            )
        _show_stop_check(report["stop_check"])
    out = Path(report["output_dir"])
    print(f"adapter:  {report['adapter']}\nreport:   {out / 'train_report.json'}\nloss:     {report['loss_curve']}")
    if report["task"] in ("classification", "dpo"):
        print(f"metrics:  {out / (report['task'] + '_metrics.json')}")
    if strict and report["stop_check"] and report["stop_check"]["passed"] is False:
        raise typer.Exit(GATES)


def _show_stop_check(stop: dict) -> None:
    if not stop["samples"]:
        print("stop check: no held-out chat record to prompt with")
        return
    answers = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in stop["answers"].items() if v)
    print(
        f"stop check: {'passed' if stop['passed'] else 'FAILED'} — {stop['stop_rate']:.0%} of {stop['samples']} "
        f"answers well formed ({answers}); median length {stop['median_length_ratio']}x the reference's"
    )
    task = stop.get("task") or {}
    if task.get("kind") == "classification":
        print(f"task: accuracy {task['accuracy']:.1%}, macro-F1 {task['macro_f1']:.3f} over {task['classes']} classes")
    elif task:
        print(f"task: ROUGE-L F1 {task['rouge_l_f1']:.3f} against the reference answers")
    if stop.get("warning"):
        console.print(f"[bold yellow]WARNING:[/] {stop['warning']}")


def _show_classification(result: dict) -> None:
    from rich.table import Table

    print(
        f"{result['split']} split: accuracy {result['accuracy']:.1%}, macro-F1 {result['macro_f1']:.3f} over "
        f"{result['records']} records"
    )
    table = Table("label", "precision", "recall", "F1", "support")
    for label, m in result["per_label"].items():
        table.add_row(label, f"{m['precision']:.3f}", f"{m['recall']:.3f}", f"{m['f1']:.3f}", str(m["support"]))
    Console().print(table)
    for column, values in result["strata"].items():
        shown = ", ".join(
            f"{v}: {m['accuracy']:.1%} (n={m['records']})" for v, m in list(values.items())[:6] if "accuracy" in m
        )
        print(f"accuracy by {column}: {shown}")
    for reversal in result["reversals"]:
        console.print(f"[bold yellow]WARNING:[/] {reversal['reading']}")


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
    """Answer one user message with the adapter (ChatML, greedy, stops at <|im_end|>); a classification
    adapter prints the label it gives the text, with each label's probability."""
    from curate.train.chat import IM_END, chatml
    from curate.train.run import trained_task

    model, tokenizer = _load(adapter)
    if trained_task(adapter) == "classification":
        import torch

        with torch.no_grad():
            logits = model(**tokenizer(prompt, add_special_tokens=False, return_tensors="pt")).logits[0]
        probabilities = torch.softmax(logits.float(), -1).tolist()
        ranked = sorted(zip(probabilities, range(len(probabilities))), reverse=True)
        print(model.config.id2label[ranked[0][1]])
        for p, i in ranked:
            print(f"  {model.config.id2label[i]}: {p:.3f}")
        return
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


def _per_gpu(values: list[str] | None, flag: str) -> dict[str, float]:
    """`NAME=NUMBER` pairs (e.g. `H100=2.49`) as a dict; anything else is an error naming the flag."""
    pairs = {}
    for value in values or []:
        name, _, number = value.partition("=")
        try:
            pairs[name.strip()] = float(number)
        except ValueError:
            _fail(CurateError(f"{flag} {value!r}: expected GPU=NUMBER, e.g. {flag} H100=2.49"))
    return pairs


@app.command()
def plan(
    shards: Annotated[
        str, typer.Argument(help="Curated shards: a catalog reference (shards://name@latest) or a run dir.")
    ],
    tokenizer: Annotated[
        Path | None,
        typer.Option(help="The base's tokenizer folder (local; nothing is downloaded). Default: the embedded one."),
    ] = None,
    max_length: Annotated[int, typer.Option(min=16, help="Tokens per example; longer ones are cut.")] = 512,
    batch_size: Annotated[int, typer.Option(min=1, help="Examples (or packed rows) per step.")] = 8,
    train_on: Annotated[str, typer.Option(help="all_assistant, last_assistant or all.")] = "all_assistant",
    include_text_records: Annotated[bool, typer.Option(help="Count plain-text records too.")] = False,
    packing: Annotated[bool, typer.Option(help="Pack examples into max_length rows.")] = False,
    lora_r: Annotated[int, typer.Option(min=1, help="LoRA rank (all linear layers).")] = 16,
    model: Annotated[list[str] | None, typer.Option(help="Only this model (repeatable), e.g. Qwen2.5-7B.")] = None,
    method: Annotated[list[str] | None, typer.Option(help="Only lora or qlora (repeatable).")] = None,
    gpu: Annotated[
        list[str] | None, typer.Option(help="Only this card (repeatable): T4, L4, A100-40, A100-80, H100.")
    ] = None,
    gpu_hours_price: Annotated[
        list[str] | None, typer.Option(help="Your price per GPU hour, GPU=USD (repeatable), e.g. H100=2.49.")
    ] = None,
    tokens_per_second: Annotated[
        list[str] | None,
        typer.Option(help="Your measured tokens/s, GPU=N (repeatable); needs one --model and one --method."),
    ] = None,
    mfu: Annotated[
        float | None, typer.Option(min=0.01, max=1.0, help="Model FLOPs utilisation for every card.")
    ] = None,
    sample: Annotated[int | None, typer.Option(min=1, help="Count a seeded sample of this many records.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
) -> None:
    """Tokens, truncation, memory per GPU, and time and cost per epoch for Qwen2.5/Qwen3 with LoRA and QLoRA."""
    import sys

    from curate.train.plan import Settings, render
    from curate.train.plan import plan as make_plan

    if train_on not in ("all_assistant", "last_assistant", "all"):
        _fail(CurateError(f"--train-on {train_on!r}: expected all_assistant, last_assistant or all"))
    settings = Settings(max_length, batch_size, train_on, include_text_records, packing, lora_r, sample)
    try:
        result = make_plan(
            shards,
            str(tokenizer) if tokenizer else None,
            settings,
            models=model,
            methods=method,
            gpus=gpu,
            prices=_per_gpu(gpu_hours_price, "--gpu-hours-price"),
            tokens_per_second=_per_gpu(tokens_per_second, "--tokens-per-second"),
            mfu=mfu,
        )
    except CurateError as exc:
        _fail(exc)
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        render(result, Console(width=None if sys.stdout.isatty() else 170))
