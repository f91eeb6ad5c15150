"""Training progress as it happens: one line per logging step on the console, and the same figures in
TensorBoard. transformers' own printer writes raw dicts (or nothing, with its bars off); a user
waiting on a CPU run wants to know the step, the loss, and when it will end."""

from __future__ import annotations

import time

from transformers import TrainerCallback


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return (
        f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
        if seconds >= 3600
        else (f"{seconds // 60}:{seconds % 60:02d}")
    )


class Progress(TrainerCallback):
    """Step, loss, learning rate, tokens/s, elapsed time and ETA at every logging step; the eval loss at
    every evaluation. `tokens_per_s` is added to the logs, so TensorBoard (a later callback) records it
    beside loss and learning rate. `count` is the trainer's TokenCount (real tokens of the training batches).
    """

    def __init__(self, count, echo, eval_records: int):
        self.count, self.echo, self.eval_records = count, echo, eval_records
        self.started = time.perf_counter()
        self.evaluated = -1

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = time.perf_counter()

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs if logs is not None else {}
        elapsed = time.perf_counter() - self.started
        step, total = state.global_step, state.max_steps
        if "loss" in logs and step:
            speed = self.count.tokens / elapsed if elapsed else 0.0
            logs["tokens_per_s"] = round(speed, 1)
            eta = elapsed / step * max(total - step, 0)
            self.echo(
                f"step {step}/{total}  loss {logs['loss']:.4f}  lr {logs.get('learning_rate', 0.0):.2e}  "
                f"{speed:,.0f} tok/s  elapsed {_clock(elapsed)}  ETA {_clock(eta)}"
            )
        elif "eval_loss" in logs and step != self.evaluated:  # the final evaluation repeats the last one
            self.evaluated = step
            self.echo(f"eval at step {step}: loss {logs['eval_loss']:.4f} on {self.eval_records} records")
