"""How the commands behave as processes: TensorFlow's start-up chatter kept off the terminal, and
SIGTERM treated like Ctrl-C so that both stop a job the same clean way."""

from __future__ import annotations

import os
import signal
import sys
from contextlib import contextmanager

VERBOSE_ENV = "SEGNET_VERBOSE"  # set (by -v) to let TensorFlow's and oneDNN's log lines through


def set_verbose(verbose: bool) -> None:
    """-v: everything through. Otherwise native libraries' log lines are kept off the terminal.

    TensorFlow's C++ code logs straight to file descriptor 2, before and regardless of its
    log level ("oneDNN custom operations are on", "oneDNN supports DT_INT64 only ..."). So,
    in a command's own process, descriptor 2 goes to /dev/null and Python's ``sys.stderr``
    writes to a duplicate of the original: every message of ours (errors, warnings) still
    reaches the user. Not done when something else already replaced ``sys.stderr`` (a test
    capturing it, a notebook).
    """
    if verbose:
        os.environ[VERBOSE_ENV] = "1"
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if sys.stderr is not sys.__stderr__ or getattr(sys.stderr, "_segnet_own", False):
        return
    try:
        if sys.stderr.fileno() != 2:
            return
    except (AttributeError, OSError, ValueError):
        return
    sys.stderr.flush()
    ours = os.fdopen(os.dup(2), "w", buffering=1, encoding=sys.stderr.encoding, errors="backslashreplace")
    ours._segnet_own = True
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    sys.stderr = sys.__stderr__ = ours


@contextmanager
def _stderr_silenced():
    """File descriptor 2 pointed at /dev/null: TensorFlow's C++ logs bypass Python's sys.stderr."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_keras():
    """``import keras`` (TensorFlow behind it) without the lines TensorFlow's C++ logging prints at start-up
    ("oneDNN custom operations are on", "This TensorFlow binary is optimized ...") unless -v was given.

    Those lines are written before TensorFlow's own log level applies, so only redirecting the file
    descriptor keeps them out. An import that fails raises as usual (its Python message is kept).
    """
    if "keras" in sys.modules or os.environ.get(VERBOSE_ENV):
        import keras

        return keras
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with _stderr_silenced():
        import keras

        keras.backend.backend()  # the backend is imported now, inside the silence
        if keras.backend.backend() == "tensorflow":
            import tensorflow  # noqa: F401
    return keras


class Interrupted(KeyboardInterrupt):
    """SIGTERM, raised where the job is, like Ctrl-C."""


_stop_asked = False


def stop_on_sigterm() -> None:
    """Make SIGTERM interrupt the job as Ctrl-C does (the temporary files are removed the same way)."""

    def handler(signum, frame):
        global _stop_asked
        _stop_asked = True
        raise Interrupted()

    signal.signal(signal.SIGTERM, handler)


def stop_asked() -> bool:
    """Whether SIGTERM came, even if a library caught the exception it raised (a loop checks this
    between units of work so that a half-done one is never recorded as done)."""
    return _stop_asked
