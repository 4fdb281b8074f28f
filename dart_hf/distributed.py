"""Process state for multi-process adaptation (`torchrun` / `accelerate launch`), via Accelerate.

    state = process_state()        # before the student is loaded: it picks `state.device`
    ...
    adapted = adapt_in_chunks(dataset, adapter, out_dir, state=state)   # None on non-main ranks
    ...
    finish()

A plain `python script.py` gets a one-process state and runs as before.
"""

from __future__ import annotations

import logging
from typing import Any, Optional

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 3 * 3600.0


def has_accelerator() -> bool:
    """True when torch sees a GPU-like device (CUDA, ROCm, XPU, MPS, ...) in this process."""
    import torch

    accelerator = getattr(torch, "accelerator", None)  # torch >= 2.6
    if accelerator is not None and hasattr(accelerator, "is_available"):
        return bool(accelerator.is_available())
    return bool(torch.cuda.is_available())


def process_state(cpu: Optional[bool] = None, timeout_s: float = DEFAULT_TIMEOUT_S) -> Any:
    """Accelerate's `PartialState` for this process, started once (it is a singleton).

    Args:
        cpu: None means "CPU when there is no accelerator". The flag matters: on a CPU-only machine
            a plain `PartialState()` under `torchrun --nproc_per_node N` silently runs N
            single-process copies, each doing all the work; `PartialState(cpu=True)` starts the gloo
            process group instead. Under `accelerate launch --cpu`, Accelerate's own
            `ACCELERATE_USE_CPU` also forces CPU.
        timeout_s: how long a collective (gathering a chunk, a barrier) may wait for the slowest
            process. Processes that finish their share early wait for the others, which with big
            students can outlast torch's defaults (10 minutes with NCCL), so the default is generous.
    """
    import os
    from datetime import timedelta

    from accelerate import PartialState

    if cpu is None:
        cpu = os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes") or not has_accelerator()
    state = PartialState(cpu=cpu, timeout=timedelta(seconds=timeout_s))
    if state.num_processes > 1:
        import torch

        logger.info(
            "process %d/%d on %s (%d torch threads)",
            state.process_index,
            state.num_processes,
            state.device,
            torch.get_num_threads(),
        )
    return state


def finish(wait: bool = True) -> None:
    """Wait for every process (`wait`), then end the run's process group (`destroy_process_group`), if one was started.

    Why the barrier: a process with nothing left to do (a resume whose chunks are all done) would
    otherwise tear its group down while the main process is still writing the outputs; a gloo peer
    that vanishes mid-teardown can abort the other, and torchrun then kills the main process before
    it wrote anything. Commands wait only when they succeeded: every process of a successful run
    reaches `finish`, so the barrier is met; a process that failed alone (its others may be inside
    a collective) leaves at once, and torchrun stops the others instead of all of them hanging.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        if wait and dist.get_world_size() > 1:
            logger.info("process %d waits for the others before finishing", dist.get_rank())
            try:
                dist.barrier()
            except Exception as err:  # noqa: BLE001 - a process that failed left early; it reports why
                logger.warning("process %d: another process left before finishing (%s)", dist.get_rank(), err)
        dist.destroy_process_group()
