"""Writing result files safely and checking them: one atomic-write helper (and `write_table` for
pandas tables through it) and one MD5 helper.

Every file the package writes (session and result tables, models, checkpoints, figures, downloads)
goes through `atomic_output`: the content is written to a hidden temporary file beside the target
and renamed into place only when the writer finished, so a crash, a kill or a full disk never
leaves half a file under the real name, and the temporary file is removed on any failure.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

# Less free space than this after a failed write is taken as "the disk is full": torch and
# pyarrow do not always pass the operating system's ENOSPC on.
FULL_DISK_BYTES = 1 << 20


class DiskFullError(OSError):
    """A write failed because its file system has no space left; the message names the file."""

    def __init__(self, message: str):
        super().__init__(message)
        self.errno = errno.ENOSPC


def md5sum(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex MD5 of a file, read in chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def give_normal_mode(path: str | os.PathLike) -> None:
    """Set the mode a new file gets (0666 less the umask) on a file another library made 0600 (mkstemp)."""
    mask = os.umask(0o022)  # reading the umask means setting it: put it straight back
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


def _says_disk_full(error: BaseException, folder: Path) -> bool:
    """ENOSPC anywhere in the exception chain, or (libraries that hide it) no free space left."""
    seen = error
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "No space left on device" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    try:
        return shutil.disk_usage(folder).free < FULL_DISK_BYTES
    except OSError:
        return False


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; it becomes ``path`` only if the block succeeds.

    The temporary file is created empty with the normal mode for new files (0666 less the umask,
    e.g. 0644), so results stay readable by the group and others as any other file would. On any
    failure it is removed; a failure for lack of space is re-raised as `DiskFullError`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.part")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # the umask applies, as for open()
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as error:
        full = isinstance(error, Exception) and _says_disk_full(error, path.parent)
        tmp.unlink(missing_ok=True)
        if full:
            raise DiskFullError(
                f"{path}: the disk is full (No space left on device while writing it; nothing was kept); "
                f"free some space on the file system of {path.parent} and rerun",
            ) from error
        raise


def write_table(frame, *paths: str | os.PathLike, float_format: str = "%.4f") -> None:
    """Write a pandas DataFrame atomically (temporary file, then rename) to each path: parquet, or
    CSV / TSV by the suffix (floats as ``float_format``, for reading by eye and in the report)."""
    for path in paths:
        with atomic_output(path) as tmp:
            suffix = Path(path).suffix
            if suffix in (".csv", ".tsv"):
                frame.to_csv(tmp, index=False, sep="\t" if suffix == ".tsv" else ",", float_format=float_format)
            else:
                frame.to_parquet(tmp, index=False)
