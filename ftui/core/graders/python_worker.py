"""The python grader's process (run as a script with ``python -I``; never imported by ftui): it limits itself as
OpenAI's grader sandbox is limited — 2 GB of address space, CPU time, 1 GB of files written, no network where the
kernel lets an unprivileged process take a network namespace of its own — then compiles the user's source once and
grades one sample per line of standard input, answering one JSON line per sample on a private descriptor (what the
grader prints goes nowhere). An exception or a non-number is that sample's error; the process goes on."""

import ctypes
import json
import math
import os
import resource
import sys
import traceback


def limit(memory: int, cpu: int, files: int) -> bool:
    for what, value in ((resource.RLIMIT_AS, memory), (resource.RLIMIT_CPU, cpu), (resource.RLIMIT_FSIZE, files),
                        (resource.RLIMIT_CORE, 0)):
        try:
            resource.setrlimit(what, (value, value))
        except (ValueError, OSError):
            pass
    try:  # a user and a network namespace of its own: only a loopback that is down
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.unshare(0x10000000 | 0x40000000) == 0  # CLONE_NEWUSER | CLONE_NEWNET
    except (OSError, AttributeError):
        return False


def main() -> None:
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    sys.stdout = open(os.devnull, "w")
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    head = json.loads(sys.stdin.readline())
    isolated = limit(head["memory"], head["cpu"], head["files"])
    try:
        namespace: dict = {"__name__": "grader"}
        exec(compile(head["source"], "<grader>", "exec"), namespace)
        grade = namespace["grade"]
    except BaseException:
        out.write(json.dumps({"fatal": traceback.format_exc(limit=-3)}) + "\n")
        out.flush()
        return
    out.write(json.dumps({"ready": True, "network_isolated": isolated}) + "\n")
    out.flush()
    for line in sys.stdin:
        req = json.loads(line)
        reply: dict[str, object]
        try:
            value = grade(req["sample"], req["item"])
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                reply = {"error": f"grade() returned {type(value).__name__} {value!r:.80}, not a finite number"}
            else:
                reply = {"score": float(value)}
        except MemoryError:
            reply = {"error": "MemoryError: the grader went over its 2 GB of memory"}
        except BaseException:
            reply = {"error": traceback.format_exc(limit=-3)[-2000:]}
        out.write(json.dumps(reply) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
