"""Fetch the published rat hippocampus sessions: pooch (retries, timeout, progress), two MD5s, atomic.

Each rat is a gzipped joblib pickle. The ``.jl.gz`` is downloaded by pooch into a temporary
file and kept only if its MD5 matches; it is then decompressed into a temporary file whose MD5
must match the published ``.jl`` MD5 before it is renamed into place. Nothing here unpickles:
``cebra_core.sessions.data.load_session`` opens a ``.jl`` only after checking its MD5 again.
"""

from __future__ import annotations

import gzip
import logging
import os
import shutil
import zlib
from pathlib import Path

from cebra_core.sessions.files import atomic_output, give_normal_mode, md5sum
from cebra_core.sessions.rats import PUBLISHED
from cebra_core.sessions.validation import InputError

DEFAULT_BASE_URL = "https://cebra.fra1.digitaloceanspaces.com/data/rat_hippocampus/"
RETRIES = 3  # tries per file
TIMEOUT = 60.0  # seconds without data before a try is abandoned

log = logging.getLogger(__name__)


class DownloadError(InputError, RuntimeError):
    """A session could not be fetched and verified; the message says what to do."""


def _advice(name: str, base_url: str) -> str:
    return (
        f"Check the network connection and rerun, set `data: download: base_url:` to a mirror that serves "
        f"{name}.jl.gz, or download the file yourself and use `data: source: local` "
        f"(see docs/your-data.md). Base URL tried: {base_url}"
    )


def fetch_session(
    name: str,
    dest: str | os.PathLike,
    *,
    base_url: str = DEFAULT_BASE_URL,
    gz_md5: str | None = None,
    jl_md5: str | None = None,
    retries: int = RETRIES,
    timeout: float = TIMEOUT,
    progressbar: bool = True,
    cache_dir: str | os.PathLike | None = None,
) -> Path:
    """Download ``{base_url}/{name}.jl.gz``, verify both MD5s, write ``dest`` (the .jl) atomically.

    ``gz_md5``/``jl_md5`` default to the published checksums. The verified ``.jl.gz`` is kept in
    ``cache_dir`` (default: ``dest``'s folder) so a rerun does not download it again.
    """
    import pooch
    import requests

    dest = Path(dest)
    known = PUBLISHED.get(name, {})
    gz_md5 = gz_md5 or known.get("gz_md5")
    jl_md5 = jl_md5 or known.get("jl_md5")
    if not (gz_md5 and jl_md5):
        raise DownloadError(
            f"session {name!r} is not a published rat ({', '.join(PUBLISHED)}) and no MD5s were given; "
            "use `data: source: local` for your own sessions."
        )
    base_url = base_url.rstrip("/") + "/"
    cache_dir = Path(cache_dir) if cache_dir is not None else dest.parent
    fetcher = pooch.create(
        path=cache_dir,
        base_url=base_url,
        registry={f"{name}.jl.gz": f"md5:{gz_md5}"},
        retry_if_failed=max(0, retries - 1),
    )
    downloader = pooch.HTTPDownloader(progressbar=progressbar, timeout=timeout)
    url = f"{base_url}{name}.jl.gz"
    log.info("fetching %s (md5 %s) into %s", url, gz_md5, cache_dir)
    try:
        gz_path = Path(fetcher.fetch(f"{name}.jl.gz", downloader=downloader))
    except ValueError as err:  # pooch: hash mismatch after every try; its temporary file is gone
        raise DownloadError(
            f"{url}: checksum mismatch after {retries} tries ({err}). Nothing was kept. " + _advice(name, base_url)
        ) from err
    except requests.exceptions.RequestException as err:
        raise DownloadError(f"{url}: download failed after {retries} tries ({err}). " + _advice(name, base_url)) from err
    give_normal_mode(gz_path)  # pooch's temporary file was created 0600

    with atomic_output(dest) as tmp:
        try:
            with gzip.open(gz_path, "rb") as src, open(tmp, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
        except (EOFError, gzip.BadGzipFile, zlib.error) as err:
            raise DownloadError(f"{gz_path}: not a valid gzip file ({err})") from err
        actual = md5sum(tmp)
        if actual != jl_md5:
            gz_path.unlink(missing_ok=True)  # its content is wrong: do not reuse it
            raise DownloadError(
                f"{name}.jl extracted from {url} has MD5 {actual}, expected {jl_md5}; it was deleted "
                "without being opened. " + _advice(name, base_url)
            )
    log.info("verified %s (md5 %s)", dest, jl_md5)
    return dest
