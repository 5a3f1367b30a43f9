"""Reading an np.savez archive (a checkpoint's weights.npz / ema.npz) without trusting it.

np.load on an .npz decompresses whatever each member's header declares: a 3 MB file can expand
to gigabytes, and numpy allocates the declared array before reading a byte. Here every member's
.npy header is read first and checked — stored (np.savez never compresses), float32, its
declared size matching the member's size and lying inside the file, its key and shape those the
architecture expects — and only then are the arrays read. Memory is bounded by the file's size.
"""

from __future__ import annotations

import math
import os
import zipfile

import numpy as np

MAX_ARRAYS = 100_000  # a model with more parameter tensors than this is not one diffbench builds


class NpzError(ValueError):
    """What is wrong with the archive (the caller adds the file's name)."""


def _member_header(zf: zipfile.ZipFile, info: zipfile.ZipInfo):
    with zf.open(info) as member:
        version = np.lib.format.read_magic(member)
        if version not in ((1, 0), (2, 0)):
            raise NpzError(f"array {info.filename!r}: .npy format {version}; allowed: 1.0, 2.0")
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read(member)
        return shape, fortran, dtype, member.tell()


def _check_member(info: zipfile.ZipInfo, size: int) -> str:
    name = info.filename
    if not name.endswith(".npy") or len(name) == 4:
        raise NpzError(f"member {name!r} is not an array; allowed: KEY.npy members as np.savez writes them")
    if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size:
        raise NpzError(f"array {name!r} is compressed ({info.file_size} bytes from {info.compress_size}); "
                       "allowed: stored members as np.savez writes them")
    if info.header_offset + info.compress_size > size:
        raise NpzError(f"array {name!r} claims {info.compress_size} bytes past the end of the file (truncated?)")
    return name[:-4]


def read(file, expect: dict | None = None) -> dict[str, np.ndarray]:
    """key -> float32 array from an open binary file of np.savez format. `expect` (key -> shape)
    is the architecture's: the archive must hold exactly those keys with those shapes."""
    size = os.fstat(file.fileno()).st_size
    try:
        with zipfile.ZipFile(file) as zf:
            infos = zf.infolist()
            if len(infos) > MAX_ARRAYS:
                raise NpzError(f"{len(infos)} members; allowed: at most {MAX_ARRAYS}")
            plan = {}
            for info in infos:
                key = _check_member(info, size)
                if key in plan:
                    raise NpzError(f"array {key!r} appears twice; allowed: each key once")
                shape, _, dtype, header = _member_header(zf, info)
                if dtype != np.float32:
                    raise NpzError(f"array {key!r} has dtype {dtype}; allowed: float32")
                if header + 4 * math.prod(shape) != info.file_size:
                    raise NpzError(f"array {key!r} declares shape {shape} ({4 * math.prod(shape)} bytes) in a "
                                   f"member of {info.file_size - header}; allowed: a shape matching its data")
                plan[key] = (info, shape)
            if expect is not None:
                _match(plan, expect)
            return {key: np.lib.format.read_array(zf.open(info), allow_pickle=False)
                    for key, (info, _) in plan.items()}
    except NpzError:
        raise
    except Exception as exc:  # noqa: BLE001 - zipfile and np.lib.format on hostile bytes raise BadZipFile,
        # ValueError, EOFError, OSError, TokenError, SyntaxError, RecursionError, NotImplementedError, ...
        raise NpzError(f"not a readable np.savez archive ({type(exc).__name__}: {exc})") from None


def _match(plan: dict, expect: dict) -> None:
    extra = [k for k in plan if k not in expect]
    missing = [k for k in expect if k not in plan]
    wrong = [f"{k} {plan[k][1]} (the model's: {tuple(expect[k])})" for k in plan
             if k in expect and tuple(plan[k][1]) != tuple(expect[k])]
    problems = []
    if wrong:
        problems.append(f"{len(wrong)} array(s) of the wrong shape: {', '.join(wrong[:3])}")
    if extra:
        problems.append(f"{len(extra)} array(s) the model does not have: {', '.join(extra[:3])}")
    if missing:
        problems.append(f"{len(missing)} of the model's array(s) missing: {', '.join(missing[:3])}")
    if problems:
        raise NpzError("; ".join(problems) + "; allowed: the architecture's keys and shapes")
