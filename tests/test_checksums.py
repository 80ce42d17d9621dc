"""adler32 implementations and verified copies."""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from protopipe_grid_interface import checksums

#: data that exercises adler32's modulo reductions: empty, tiny, runs of 0xff around zlib's
#: NMAX (5552 bytes between reductions), random bytes across chunk boundaries
SAMPLES = {
    "empty": b"",
    "one byte": b"\x01",
    "0xff x NMAX-1": b"\xff" * 5551,
    "0xff x NMAX": b"\xff" * 5552,
    "0xff x NMAX+1": b"\xff" * 5553,
    "0xff x 3 MiB": b"\xff" * (3 << 20),
    "random 5 MB": np.random.default_rng(7).bytes(5_000_003),
}


def implementations() -> list[Any]:
    return [pytest.param(module, id=label) for module, label in checksums.IMPLEMENTATIONS]


@pytest.mark.parametrize("module", implementations())
@pytest.mark.parametrize("name", list(SAMPLES))
def test_every_implementation_gives_zlibs_value(module: str, name: str) -> None:
    try:
        function = checksums.load_adler32(module)
    except ImportError:
        pytest.skip(f"{module} is not installed")
    data = SAMPLES[name]
    assert function(data, 1) == zlib.adler32(data)
    for start in (0, 1, 0x12345678, 0xFFF0FFF0):  # valid running values: halves < 65521
        assert function(data, start) == zlib.adler32(data, start)
    view = memoryview(data)  # chunked with a running value, as the copies do
    value = 1
    for offset in range(0, len(data), 1 << 20):
        value = function(view[offset:offset + (1 << 20)], value)
    assert value == zlib.adler32(data)


def test_the_fast_implementation_is_used_when_installed() -> None:
    try:
        checksums.load_adler32("zlib_ng.zlib_ng")
    except ImportError:
        pytest.skip("zlib-ng is not installed (the fast extra)")
    assert checksums.ADLER32_IMPLEMENTATION == "zlib-ng"


def test_falls_back_to_the_standard_library(monkeypatch: pytest.MonkeyPatch) -> None:
    real = checksums.load_adler32

    def only_stdlib(module: str) -> checksums.Adler32:
        if module != "zlib":
            raise ImportError(module)
        return real(module)

    monkeypatch.setattr(checksums, "load_adler32", only_stdlib)
    assert checksums.select_adler32() == ("zlib", zlib.adler32)


@pytest.mark.parametrize("module", implementations())
def test_file_checksum_and_copies_agree_with_zlib(module: str, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        monkeypatch.setattr(checksums, "_adler32", checksums.load_adler32(module))
    except ImportError:
        pytest.skip(f"{module} is not installed")
    data = SAMPLES["random 5 MB"]
    source = tmp_path / "source.bin"
    source.write_bytes(data)
    expected = f"{zlib.adler32(data):08x}"

    assert checksums.adler32(source) == expected
    assert checksums.adler32_bytes(data) == expected
    assert checksums.copy_into(source, tmp_path / "copy.bin") == expected
    assert (tmp_path / "copy.bin").read_bytes() == data
    assert checksums.copy_atomic(source, tmp_path / "sub" / "atomic.bin") == expected
    assert (tmp_path / "sub" / "atomic.bin").read_bytes() == data
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["atomic.bin"]


def test_checksums_keep_leading_zeros(tmp_path: Path) -> None:
    path = tmp_path / "a"
    path.write_bytes(b"a")  # adler32 0x00620062
    assert checksums.adler32(path) == "00620062"
    assert checksums.same_checksum("620062", "00620062")


def test_copy_into_resumes_short_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """write() may take fewer bytes than given: the copy goes on, the checksum stays right."""
    data = SAMPLES["random 5 MB"]
    source = tmp_path / "source.bin"
    source.write_bytes(data)

    class Stingy:
        def __init__(self, stream: Any) -> None:
            self.stream = stream

        def __enter__(self) -> Stingy:
            return self

        def __exit__(self, *exc: object) -> None:
            self.stream.close()

        def readinto(self, buffer: Any) -> int:
            return int(self.stream.readinto(buffer))

        def write(self, chunk: Any) -> int:
            return int(self.stream.write(chunk[:1000]))  # at most 1000 bytes a call

    monkeypatch.setattr(checksums, "open", lambda *a, **k: Stingy(open(*a, **k)),
                        raising=False)
    assert checksums.copy_into(source, tmp_path / "copy.bin") == f"{zlib.adler32(data):08x}"
    assert (tmp_path / "copy.bin").read_bytes() == data


def test_copy_into_removes_the_destination_on_error(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(SAMPLES["random 5 MB"])
    calls = []

    def failing(data: Any, value: int) -> int:
        calls.append(len(data))
        if len(calls) == 3:
            raise OSError("disk gone")
        return zlib.adler32(data, value)

    monkeypatch.setattr(checksums, "_adler32", failing)
    with pytest.raises(OSError, match="disk gone"):
        checksums.copy_into(source, tmp_path / "copy.bin")
    assert not (tmp_path / "copy.bin").exists()
