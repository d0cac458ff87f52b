"""Put this folder on PYTHONPATH of a `python -m modelsync` subprocess to make its disk misbehave.

FAULTY_DISK_SHORT_EVERY=N   every Nth os.pwrite writes only half of what it was given (a short
                            write, as a nearly full disk or a file size limit gives)
FAULTY_DISK_ENOSPC_AFTER=B  once B bytes were written with os.pwrite, every later call fails ENOSPC
"""

import errno
import os
import threading

_short_every = int(os.environ.get("FAULTY_DISK_SHORT_EVERY") or 0)
_enospc_after = os.environ.get("FAULTY_DISK_ENOSPC_AFTER")
_enospc_after = int(_enospc_after) if _enospc_after else None

if _short_every or _enospc_after is not None:
    _real_pwrite = os.pwrite
    _lock = threading.Lock()
    _state = {"calls": 0, "bytes": 0}

    def pwrite(fd, data, offset):
        with _lock:
            _state["calls"] += 1
            calls, written = _state["calls"], _state["bytes"]
        if _enospc_after is not None and written + len(data) > _enospc_after:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        if _short_every and calls % _short_every == 0 and len(data) > 1:
            data = memoryview(data)[: len(data) // 2]
        count = _real_pwrite(fd, data, offset)
        with _lock:
            _state["bytes"] += count
        return count

    os.pwrite = pwrite
