import hashlib
from pathlib import Path

from recsys.file_digest import CHUNK_BYTES, file_sha256


def test_a_file_longer_than_one_chunk_hashes_as_its_whole_bytes(tmp_path: Path) -> None:
    content = bytes(range(256)) * (CHUNK_BYTES * 5 // 2 // 256) + b"tail"
    path = tmp_path / "blob.bin"
    path.write_bytes(content)
    assert len(content) > 2 * CHUNK_BYTES
    assert file_sha256(path) == hashlib.sha256(content).hexdigest()
    assert file_sha256(str(path)) == file_sha256(path)
    path.write_bytes(content[:-1])
    assert file_sha256(path) == hashlib.sha256(content[:-1]).hexdigest()


def test_an_empty_file_hashes_as_no_bytes(tmp_path: Path) -> None:
    path = tmp_path / "empty"
    path.write_bytes(b"")
    assert file_sha256(path) == hashlib.sha256(b"").hexdigest()
