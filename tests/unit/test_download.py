"""The download path against a local HTTP server on 127.0.0.1, with the real buddy.jl gzipped here.

The gzip made here is not the published .jl.gz byte for byte, so its MD5 is passed explicitly;
the .jl inside is the published file and is checked against the published MD5.
"""

import gzip
import hashlib
import os
import time

import joblib
import numpy as np
import pandas as pd
import pytest

from cebra_core.sessions import download
from cebra_core.sessions.data import load_session
from cebra_core.sessions.download import DownloadError, fetch_session
from cebra_core.sessions.rats import PUBLISHED
from helpers import run_snakemake, shared_file, write_config


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@pytest.fixture(scope="module")
def buddy_gz() -> bytes:
    return gzip.compress(shared_file("buddy.jl").read_bytes(), mtime=0)


@pytest.fixture
def no_unpickling(monkeypatch):
    """Fail the test if anything calls joblib.load while it runs."""

    def refuse(*args, **kwargs):
        raise AssertionError("joblib.load was called")

    monkeypatch.setattr(joblib, "load", refuse)


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_good_file(tmp_path, file_server, buddy_gz):
    file_server.files["buddy.jl.gz"] = buddy_gz
    dest = tmp_path / "raw" / "buddy.jl"
    out = fetch_session("buddy", dest, base_url=file_server.url, gz_md5=md5(buddy_gz), progressbar=False)
    assert out == dest
    assert md5(dest.read_bytes()) == PUBLISHED["buddy"]["jl_md5"]
    assert leftovers(dest.parent) == ["buddy.jl", "buddy.jl.gz"]  # no partial files
    umask = os.umask(0o022)
    os.umask(umask)
    for path in (dest, dest.with_suffix(".jl.gz")):  # readable by the group and others, as any new file
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    x, y = load_session(dest)
    assert x.shape == (6577, 48) and y.shape == (6577, 3)
    # A second call reuses the verified .jl.gz instead of downloading it again.
    fetch_session("buddy", dest, base_url=file_server.url, gz_md5=md5(buddy_gz), progressbar=False)
    assert len(file_server.requests) == 1


def test_corrupt_file_fails_checksum_and_leaves_nothing(tmp_path, file_server, buddy_gz, no_unpickling):
    corrupt = bytearray(buddy_gz)
    corrupt[1000:1010] = b"0123456789"
    file_server.files["buddy.jl.gz"] = bytes(corrupt)
    dest = tmp_path / "raw" / "buddy.jl"
    with pytest.raises(DownloadError, match="checksum mismatch after 2 tries") as err:
        fetch_session("buddy", dest, base_url=file_server.url, gz_md5=md5(buddy_gz), retries=2, progressbar=False)
    assert "base_url" in str(err.value) and "source: local" in str(err.value)  # says what to do
    assert leftovers(dest.parent) == []
    assert len(file_server.requests) == 2


def test_wrong_jl_inside_a_good_gz_is_deleted_unopened(tmp_path, file_server, no_unpickling):
    # The transfer checks out (its .gz MD5 is given) but the .jl inside is not the published one.
    payload = gzip.compress(b"cos\nsystem\n(S'echo pwned'\ntR.", mtime=0)
    file_server.files["buddy.jl.gz"] = payload
    dest = tmp_path / "raw" / "buddy.jl"
    with pytest.raises(DownloadError, match=f"expected {PUBLISHED['buddy']['jl_md5']}"):
        fetch_session("buddy", dest, base_url=file_server.url, gz_md5=md5(payload), progressbar=False)
    assert leftovers(dest.parent) == []  # neither the .jl nor the .gz it came from


def test_published_checksum_is_the_default(tmp_path, file_server, buddy_gz):
    # Our gzip differs from the published .jl.gz, so the published .gz MD5 rejects it.
    file_server.files["buddy.jl.gz"] = buddy_gz
    with pytest.raises(DownloadError, match="checksum mismatch"):
        fetch_session("buddy", tmp_path / "buddy.jl", base_url=file_server.url, retries=1, progressbar=False)


def test_server_down_is_a_clear_error(tmp_path, closed_port_url):
    dest = tmp_path / "raw" / "buddy.jl"
    start = time.monotonic()
    with pytest.raises(DownloadError, match="download failed after 2 tries") as err:
        fetch_session("buddy", dest, base_url=closed_port_url, retries=2, timeout=5, progressbar=False)
    assert time.monotonic() - start < 30
    assert "Check the network connection" in str(err.value) and closed_port_url in str(err.value)
    assert leftovers(dest.parent) == []


def test_truncated_transfer_is_retried(tmp_path, file_server, buddy_gz):
    file_server.files["buddy.jl.gz"] = buddy_gz
    file_server.truncate_first = 1  # full Content-Length, half the body, connection closed
    dest = tmp_path / "raw" / "buddy.jl"
    fetch_session("buddy", dest, base_url=file_server.url, gz_md5=md5(buddy_gz), retries=3, progressbar=False)
    assert len(file_server.requests) == 2
    assert md5(dest.read_bytes()) == PUBLISHED["buddy"]["jl_md5"]
    assert leftovers(dest.parent) == ["buddy.jl", "buddy.jl.gz"]  # nothing of the cut transfer


def test_every_transfer_cut_off_is_a_clear_error_and_leaves_nothing(tmp_path, file_server, buddy_gz, no_unpickling):
    """Each try gets half the body (the full Content-Length announced, then the connection closed):
    an error naming the URL and the tries, and no file at all, partial or otherwise."""
    file_server.files["buddy.jl.gz"] = buddy_gz
    file_server.truncate_first = 3
    dest = tmp_path / "raw" / "buddy.jl"
    with pytest.raises(DownloadError, match=r"buddy\.jl\.gz: download failed after 3 tries") as err:
        fetch_session("buddy", dest, base_url=file_server.url, gz_md5=md5(buddy_gz), retries=3, progressbar=False)
    assert "Check the network connection" in str(err.value) and file_server.url in str(err.value)
    assert len(file_server.requests) == 3 and file_server.truncate_first == 0
    assert leftovers(dest.parent) == []


def test_unknown_session_needs_checksums(tmp_path):
    with pytest.raises(DownloadError, match="not a published rat"):
        fetch_session("nemo", tmp_path / "nemo.jl")
    assert download.DEFAULT_BASE_URL.startswith("https://") and len(PUBLISHED) == 4


def _download_config(tmp_path, url, gz_md5):
    return write_config(
        tmp_path / "download.yaml",
        sessions=["buddy", "achilles"],
        new_session={"held_out": None},  # sample.yaml holds out gatsby, who is not in this config
        data={
            "source": "published",
            "download": {"base_url": url, "retries": 2, "timeout": 10,
                         "checksums": {"buddy": {"gz_md5": gz_md5, "jl_md5": PUBLISHED["buddy"]["jl_md5"]}}},
        },
    )


@pytest.mark.slow
def test_download_rule_through_snakemake(tmp_path, file_server, buddy_gz):
    file_server.files["buddy.jl.gz"] = buddy_gz
    config = _download_config(tmp_path, file_server.url, md5(buddy_gz))
    work = tmp_path / "work"
    run_snakemake(work, "results/data/sessions/buddy.parquet", configfile=config)
    table = pd.read_parquet(work / "results/data/sessions/buddy.parquet")
    assert table.shape == (6577, 48 + 3)
    assert np.isfinite(table.to_numpy()).all()
    assert (work / "logs/data/download_buddy.log").read_text().count("verified") == 1

    # A corrupt file: the rule fails with the reason, and no output is left behind.
    file_server.files["buddy.jl.gz"] = buddy_gz[:-100] + b"x" * 100
    work2 = tmp_path / "work2"
    proc = run_snakemake(work2, "results/data/sessions/buddy.parquet", configfile=config, check=False)
    assert proc.returncode != 0
    assert "checksum mismatch" in proc.stdout + proc.stderr
    assert not (work2 / "results/data/raw/buddy.jl").exists()
    assert leftovers(work2 / "results/data/raw") == []
