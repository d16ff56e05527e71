"""Why a job failed, in words a user can act on: out of memory (with what to change), a missing file, a bad
config, a signal, or a Python exception with the last lines of its traceback.

The exit status decides *whether* a job failed; this module only explains *why*. Nothing here imports torch:
CUDA's OutOfMemoryError is recognised by name and message.
"""

from __future__ import annotations

import signal
import traceback
from dataclasses import dataclass

from core.secrets import scrub

OOM_HINT = (
    "try a smaller per-device batch size (raise gradient accumulation to keep the effective batch), "
    "LoRA instead of full fine-tuning, a shorter max length, gradient checkpointing, or fewer concurrent jobs"
)
TRACEBACK_LINES = 12


@dataclass
class Failure:
    category: str  # oom | missing_file | bad_config | killed | exception | unavailable | exit_code
    reason: str  # one line for tables
    detail: str = ""  # more lines for the job's page (traceback tail, hint)


def classify_exception(exc: BaseException, secrets: list[str] | tuple[str, ...] = ()) -> Failure:
    from core.config.errors import ConfigError

    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    tail = scrub("\n".join(tb.rstrip().splitlines()[-TRACEBACK_LINES:]), secrets)
    msg = scrub(str(exc), secrets).strip()
    name = type(exc).__name__
    if isinstance(exc, ConfigError):
        problems = scrub("; ".join(exc.problems), secrets)
        return Failure("bad_config", f"bad config: {problems}", scrub(exc.report(), secrets))
    if isinstance(exc, MemoryError) or name == "OutOfMemoryError" or "out of memory" in msg.lower():
        where = "GPU" if ("cuda" in msg.lower() or name == "OutOfMemoryError") else "CPU"
        first = msg.splitlines()[0][:300] if msg else name
        return Failure("oom", f"{where} out of memory: {first}", f"Hint: {OOM_HINT}\n\n{tail}")
    if isinstance(exc, FileNotFoundError):
        missing = exc.filename or msg
        return Failure("missing_file", f"missing file: {scrub(str(missing), secrets)}", tail)
    first = msg.splitlines()[0][:300] if msg else ""
    return Failure("exception", f"{name}: {first}" if first else name, tail)


def signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return f"signal {num}"


def classify_exit(returncode: int, log_tail: str = "") -> Failure:
    """A worker that ended without reporting its outcome: explain from its exit status."""
    if returncode < 0:
        sig = -returncode
        reason = f"killed by {signal_name(sig)}"
        if sig == signal.SIGKILL:
            reason += " (if nobody stopped it, the system may have run out of memory)"
        return Failure("killed", reason, log_tail)
    return Failure("exit_code", f"the worker exited with code {returncode} without a final status", log_tail)
