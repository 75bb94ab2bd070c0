"""A job worker process: ``python -m temper.jobs.worker FD PARENT_PID``, started by ``processes.ProcessRunner``.

It reads the settings and the database URL, then one job at a time from its end of a socket pair (pickled), runs it with
``run_job`` and answers ``("done", job id, status)``; ``None`` asks it to exit. It dies with its parent: Linux
sends it SIGKILL when the parent thread that started it ends (``PR_SET_PDEATHSIG``), and a watchdog thread
checks the parent pid as a fallback elsewhere.
"""
from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
import time
from multiprocessing.connection import Connection

PR_SET_PDEATHSIG = 1
NICE = 19  # the lowest priority: with every core busy with jobs, the server still answers promptly


def die_with_parent(parent: int) -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the watchdog alone
        pass

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(1)
            time.sleep(1.0)

    if os.getppid() != parent:  # it died before prctl took effect
        os._exit(1)
    threading.Thread(target=watch, name="temper-worker-watchdog", daemon=True).start()


def main(fd: int, parent: int) -> None:
    die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in the server's terminal: the server stops us
    os.nice(NICE)
    conn = Connection(fd)
    settings, db = conn.recv()
    logging.basicConfig(level=settings.log_level.upper(), stream=sys.stderr,
                        format=f"%(asctime)s %(levelname)s [job worker {os.getpid()}] %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # imported with the store; its set-up is noise
    from temper.jobs.context import run_job  # after the watchdog: importing takes a while

    while (task := conn.recv()) is not None:
        job, handler = task
        conn.send(("done", job.id, run_job(job, handler, settings, db)))


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
