"""Dataset lists from the catalog: what ``cta-prod-dump-dataset`` gives, plus replica sites."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from pathlib import Path

from ..atomic import write_lines
from ..backends.base import Backend
from ..exceptions import DataError
from ..models import RemoteFile
from .split import replicas_file


def dump(backend: Backend, path: str, query: Mapping[str, str], output: Path
         ) -> tuple[list[RemoteFile], Counter[str]]:
    """Write the LFNs found to ``output`` (one per line) and ``<output>.replicas`` (LFN, then
    its storage elements); return the files and the number of files per storage element."""
    lfns = backend.find_files(path, query)
    if not lfns:
        wanted = ", ".join(f"{k}={v}" for k, v in query.items()) or "any metadata"
        raise DataError(f"no file below {path} with {wanted}")
    found = backend.metadata(lfns)
    files = [found[lfn] for lfn in sorted(found)]
    output.parent.mkdir(parents=True, exist_ok=True)
    write_lines(output, [f.lfn for f in files])
    write_lines(replicas_file(output), [f"{f.lfn}\t{','.join(f.replicas)}" for f in files])
    return files, Counter(se for f in files for se in f.replicas)
