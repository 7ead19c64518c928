"""The one atomic-write helper: normal file modes, nothing left behind on failure, a clear disk-full error."""

import errno
import hashlib
import os
from collections import namedtuple

import numpy as np
import pandas as pd
import pytest
import torch

from cebra_core.sessions import files
from cebra_core.sessions.files import write_table
from cebra_core.sessions.files import DiskFullError, atomic_output, md5sum
from cebra_core.engine.training import atomic_torch_save


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_result_files_are_group_and_world_readable(tmp_path, umask_022):
    """A parquet result table and a model file get 0644 under the default umask (not mkstemp's 0600)."""
    write_table(pd.DataFrame({"a": [1.0, 2.0]}), tmp_path / "results" / "table.parquet")
    atomic_torch_save({"w": torch.zeros(2)}, tmp_path / "results" / "model.pt")
    for name in ("table.parquet", "model.pt"):
        assert (tmp_path / "results" / name).stat().st_mode & 0o777 == 0o644
    assert sorted(os.listdir(tmp_path / "results")) == ["model.pt", "table.parquet"]


def test_failed_write_leaves_no_temporary_file(tmp_path):
    (tmp_path / "out.parquet").write_bytes(b"old")
    with pytest.raises(RuntimeError, match="killed"):
        with atomic_output(tmp_path / "out.parquet") as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed")
    assert os.listdir(tmp_path) == ["out.parquet"]
    assert (tmp_path / "out.parquet").read_bytes() == b"old"  # the previous version is untouched


def test_disk_full_is_named(tmp_path):
    """ENOSPC from the writer becomes a one-line message naming the file; the temporary file is gone."""
    target = tmp_path / "results" / "embedding.parquet"
    with pytest.raises(DiskFullError) as caught:
        with atomic_output(target) as tmp:
            tmp.write_bytes(b"x" * 100)
            raise OSError(errno.ENOSPC, "No space left on device")
    message = str(caught.value)
    assert message.startswith(f"{target}: the disk is full") and "\n" not in message
    assert caught.value.errno == errno.ENOSPC
    assert os.listdir(tmp_path / "results") == []


def test_disk_full_when_the_library_hides_enospc(tmp_path, monkeypatch):
    """torch.save on a full disk raises '[enforce fail at inline_container.cc...]' without an errno:
    no free space left after the failure is read as a full disk."""
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(files.shutil, "disk_usage", lambda folder: usage(10**9, 10**9, 0))
    with pytest.raises(DiskFullError, match="model.pt: the disk is full"):
        with atomic_output(tmp_path / "model.pt"):
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")
    assert os.listdir(tmp_path) == []
    # with space left, the same error passes through unchanged
    monkeypatch.setattr(files.shutil, "disk_usage", lambda folder: usage(10**9, 0, 10**9))
    with pytest.raises(RuntimeError, match="enforce fail"):
        with atomic_output(tmp_path / "model.pt"):
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")
    assert os.listdir(tmp_path) == []


def test_md5sum(tmp_path):
    payload = np.arange(300_000, dtype=np.int64).tobytes()  # several chunks
    (tmp_path / "f").write_bytes(payload)
    assert md5sum(tmp_path / "f", chunk_size=1 << 16) == hashlib.md5(payload).hexdigest()


def test_one_helper_for_the_package():
    """No other module writes through its own temporary files (mkstemp, os.replace)."""
    import cebra_core

    root = os.path.dirname(cebra_core.__file__)
    for name in sorted(os.listdir(root)):
        if name.endswith(".py") and name != "files.py":
            text = open(os.path.join(root, name)).read()
            assert "mkstemp" not in text and "os.replace" not in text, name
