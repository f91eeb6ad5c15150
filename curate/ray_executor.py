"""The Ray executor: the same stages, checkpoints and accounting as the local one, on a Ray cluster.

Row segments run as Ray Data `map_batches` over an actor pool: each actor builds and
`setup()`s the segment's stages once (models load once per worker), asks Ray for the
largest CPU/GPU/memory need among them (`Stage.resources`), and processes one batch
per call with the local executor's own `run_batch`. The workers read the input
too: each input file is a Ray task that parses it into parts in the run's work
folder, the driver plans the batches from the ids alone, and Ray Data carries only
where each batch's rows are. So the work folder must be storage every node sees (a
shared filesystem); results go straight from the workers to their checkpoint folders.

Global stages run as one Ray task each (`run_global`) with the stage's declared
resources, on whichever node has them (a GPU node for `retrieve` when the cluster has
one). Dedup and split spread their heavy part over the cluster themselves through
a `RayPool` (curate.parallel): MinHash sketches and the LSH (band, bucket) shuffle;
n-gram hashing and the n-gram shuffle of decontamination. Retrieve embeds and searches
chunks of the pool in tasks (on GPUs where the cluster has them) against a seed index
built once and broadcast.

Fault tolerance: Ray restarts a killed actor (setup runs again) and retries the batch
it held; a killed task is retried. Every checkpoint file is written atomically
(temp file + rename) and a batch counts as done only when its `done.json` exists, so
a retried batch overwrites the same files with the same rows: nothing is lost or
written twice. A stage that fails with an error is not retried; the error surfaces
as it would locally.
"""

from __future__ import annotations

import logging
import os
import pickle
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson

from curate import executor as local
from curate.catalog import curate_home
from curate.config import RaySpec, ResolvedStage
from curate.errors import ConfigError, CurateError
from curate.hashing import code_fingerprint
from curate.stages.base import Resources, StageContext
from curate.stages.registry import STAGES

RETRIES = 3  # how often a batch or a global stage is retried after its worker died


class WorkerMismatch(CurateError):
    """A Ray worker runs a different curate than the driver."""


def check_code(expected: str) -> None:
    """Every worker must run the driver's curate; results would otherwise differ by node."""
    if (found := code_fingerprint()) != expected:
        import socket

        raise WorkerMismatch(
            f"curate on Ray node {socket.gethostname()} differs from the driver's (code fingerprint "
            f"{found[:12]} vs {expected[:12]}): install the same curate version on every node, or pass it "
            "with ray.runtime_env (e.g. working_dir) in the pipeline"
        )


def segment_resources(stages: list[ResolvedStage]) -> Resources:
    """What one worker of a segment needs: the most any of its stages asks for."""
    needs = [STAGES[rs.stage].resources for rs in stages] or [Resources()]
    return Resources(
        cpus=max(r.cpus for r in needs), gpus=max(r.gpus for r in needs), memory_gb=max(r.memory_gb for r in needs)
    )


class BatchWorker:
    """A Ray Data actor: one segment's stages, set up once, applied batch by batch."""

    def __init__(
        self, stages: list[ResolvedStage], context: StageContext, seg_dir: str, profile: bool, fingerprint: str
    ):
        check_code(fingerprint)
        self.names = [rs.name for rs in stages]
        self.seg_dir = Path(seg_dir)
        self.profile = profile
        self.worker = local.Worker(stages, context)

    def __call__(self, batch: dict) -> dict:
        dones = []
        for task in batch["task"]:  # where the batch's rows are; the actor reads them (BatchTask.resolved)
            done = self.worker.run_batch(self.seg_dir, self.names, pickle.loads(task), self.profile)
            dones.append(orjson.dumps(done).decode())
        return {"index": batch["index"], "done": dones}


def _cause(exc: BaseException) -> BaseException:
    """The error a stage raised, out of Ray's wrappers (RayTaskError, UserCodeException)."""
    seen = exc
    while seen is not None:
        if isinstance(seen, CurateError):
            return seen
        inner = getattr(seen, "cause", None)
        seen = inner if isinstance(inner, BaseException) else seen.__cause__
    return exc


class RayExecutor:
    def __init__(self, stages: list[ResolvedStage], context: StageContext, workers: int | None, spec: RaySpec):
        self.stages = {rs.name: rs for rs in stages}
        self.context = context
        self.requested = workers
        self.spec = spec
        self.workers = 1
        self._started = False

    # --- cluster ------------------------------------------------------------------------------
    def __enter__(self) -> "RayExecutor":
        try:
            import ray
            import ray.data
        except ImportError:
            raise ConfigError("executor: ray needs Ray: pip install 'ray[data]'") from None
        env = {"CURATE_HOME": str(curate_home().resolve())}  # workers read and write the same catalog and caches
        if not ray.is_initialized():
            # Runs must not reach the network; Ray reports usage statistics to ray.io unless told not to.
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            kwargs = dict(
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.WARNING,
                runtime_env={**self.spec.runtime_env, "env_vars": {**self.spec.runtime_env.get("env_vars", {}), **env}},
            )
            if self.spec.address == "local":
                ray.init(num_cpus=self.requested or os.cpu_count(), **kwargs)
            else:
                try:
                    ray.init(address=self.spec.address, **kwargs)
                except ConnectionError as exc:
                    raise ConfigError(f"ray.address {self.spec.address!r}: no Ray cluster there ({exc})") from None
            self._started = True
        self._env = env
        resources = ray.cluster_resources()
        self.cluster_cpus = int(resources.get("CPU", 1))
        self.cluster_gpus = float(resources.get("GPU", 0))
        self.workers = max(1, self.requested or self.cluster_cpus)
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        ctx.execution_options.preserve_order = True
        logging.getLogger("ray.data").setLevel(logging.ERROR)  # not "progress bars disabled"
        self.fingerprint = code_fingerprint()
        return self

    def __exit__(self, *exc) -> None:
        if self._started:
            import ray

            ray.shutdown()

    def rows_done(self) -> None:
        """The actors stay: the cluster's global stages run as tasks beside them."""

    def describe(self) -> dict:
        return {
            "kind": "ray",
            "address": self.spec.address,
            "workers": self.workers,
            "cluster_cpus": self.cluster_cpus,
            "cluster_gpus": self.cluster_gpus,
        }

    def _remote_args(self, need: Resources) -> dict:
        args = {"num_cpus": need.cpus, "memory": int(need.memory_gb * 2**30)}
        if need.gpus and self.cluster_gpus:  # ask for a GPU only where the cluster has one
            args["num_gpus"] = need.gpus
        return args

    # --- row segments ---------------------------------------------------------------------------
    def map_batches(
        self,
        seg_dir: Path,
        names: list[str],
        tasks: Iterator[local.BatchTask],
        profile: bool,
        on_done: Callable[[dict], None],
    ) -> list[dict]:
        """Run every task not already checkpointed on the cluster; the done records in batch order."""
        import ray.data

        results: dict[int, dict] = {}
        items = []
        for task in tasks:
            cached = local.load_done(seg_dir, task.index)
            if cached is not None:
                results[task.index] = cached
                on_done(cached)
                continue
            items.append({"index": task.index, "task": pickle.dumps(task)})
        if items:
            stages = [self.stages[n] for n in names]
            need = segment_resources(stages)
            threads = str(max(1, int(need.cpus)))  # as many threads per actor as CPUs it holds, as locally
            env = {**self._env, "POLARS_MAX_THREADS": threads, "OPENBLAS_NUM_THREADS": threads}
            with warnings.catch_warnings():
                # Bounded retries (a batch that kills its worker every time must fail the run, not loop)
                # have no named parameter yet; Ray warns that the generic remote args are deprecated.
                warnings.simplefilter("ignore", DeprecationWarning)
                ds = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
                    BatchWorker,
                    batch_size=1,
                    zero_copy_batch=True,
                    fn_constructor_args=(stages, self.context, str(seg_dir), profile, self.fingerprint),
                    compute=ray.data.ActorPoolStrategy(size=min(self.workers, len(items))),
                    runtime_env={"env_vars": env},
                    max_restarts=-1,
                    max_task_retries=RETRIES,
                    **self._remote_args(need),
                )
            try:
                for row in ds.iter_rows():
                    done = orjson.loads(row["done"])
                    results[done["index"]] = done
                    on_done(done)
            except Exception as exc:  # noqa: BLE001 - re-raised as the stage's own error when it is one
                cause = _cause(exc)
                if cause is exc:
                    raise
                raise cause from exc
        return [results[i] for i in sorted(results)]

    def read_units(
        self, units: list[local.ReadUnit], folder: Path, columns: list[str], max_record_bytes: int
    ) -> Iterator[dict]:
        """One Ray task per input file (retried when its worker dies), all started at once; the
        summaries in file order. The driver reads no input: it lists, fingerprints and plans."""
        import ray

        task = ray.remote(_read_task).options(
            num_cpus=1, max_retries=RETRIES, retry_exceptions=False, runtime_env={"env_vars": self._env}
        )
        refs = [
            task.remote(u, str(local.unit_dir(folder, u.index)), columns, max_record_bytes, self.fingerprint)
            for u in units
        ]
        try:
            for ref in refs:
                yield ray.get(ref)
        except Exception as exc:  # noqa: BLE001
            cause = _cause(exc)
            if cause is exc:
                raise
            raise cause from exc
        finally:
            for ref in refs:
                ray.cancel(ref)

    # --- global stages --------------------------------------------------------------------------
    def run_global(
        self, rs: ResolvedStage, context: StageContext, out: Path, inputs: list[Path], artifacts: str
    ) -> dict:
        import ray

        need = STAGES[rs.stage].resources
        task = ray.remote(_global_task).options(
            max_retries=RETRIES, retry_exceptions=False, runtime_env={"env_vars": self._env}, **self._remote_args(need)
        )
        try:
            return ray.get(
                task.remote(
                    rs,
                    context.with_(pool=RayPool(self.workers, self._env, self.cluster_gpus > 0)),
                    str(out),
                    [str(p) for p in inputs],
                    artifacts,
                    self.fingerprint,
                )
            )
        except Exception as exc:  # noqa: BLE001
            cause = _cause(exc)
            if cause is exc:
                raise
            raise cause from exc


def _read_task(unit: local.ReadUnit, folder: str, columns: list[str], max_record_bytes: int, fingerprint: str) -> dict:
    check_code(fingerprint)
    return local.read_unit(unit, Path(folder), columns, max_record_bytes)


def _global_task(
    rs: ResolvedStage, context: StageContext, out: str, inputs: list[str], artifacts: str, fingerprint: str
) -> dict:
    check_code(fingerprint)
    return local.run_global(rs, context, Path(out), [Path(p) for p in inputs], artifacts)


class RayPool:
    """curate.parallel.TaskPool on Ray tasks (one CPU each, retried when their worker dies). Used from
    inside a global stage's task; Ray lends that task's CPU back while it waits on them."""

    def __init__(self, workers: int, env: dict, gpus: bool = False):
        self.workers = workers
        self.env = env
        self.gpus = gpus  # whether the cluster has GPUs to give the tasks that ask for one

    def _options(self, **extra) -> dict:
        return {
            "num_cpus": 1,
            "max_retries": RETRIES,
            "retry_exceptions": False,
            "runtime_env": {"env_vars": self.env},
            **extra,
        }

    def map(self, fn, items, shared=(), gpus=0.0):
        import ray

        refs = [ray.put(value) for value in shared]  # once; Ray hands each task the value behind the ref
        task = ray.remote(_call).options(**self._options(**({"num_gpus": gpus} if gpus and self.gpus else {})))
        return ray.get([task.remote(fn, item, *refs) for item in items])

    def shuffle(self, map_fn, items, partitions, reduce_fn):
        """Mapper outputs stay in the object store; reducer k fetches part k of each mapper itself."""
        import ray

        mapper = ray.remote(_map_parts).options(**self._options(num_returns=partitions + 1))
        refs = [mapper.remote(map_fn, item, partitions) for item in items]
        reducer = ray.remote(_call_many).options(**self._options())
        reduced = [reducer.remote(reduce_fn, *[r[k + 1] for r in refs]) for k in range(partitions)]
        return ray.get([r[0] for r in refs]), ray.get(reduced)


def _call(fn, item, *shared):
    return fn(item, *shared)


def _call_many(fn, *parts):
    return fn(*parts)


def _map_parts(fn, item, partitions: int) -> tuple:
    result, parts = fn(item, partitions)
    return (result, *parts)
