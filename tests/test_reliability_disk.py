"""A full disk (a real, small tmpfs when this runs as root; otherwise an ENOSPC injected at the write call) is
one ``amk: error:`` line that says what to do, and leaves every file as it was: no traceback, no partial
export, no torn state, the store readable and the next append working once there is room again."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess

import pytest
from click.testing import CliRunner
from reliability_worker import ORIGINAL
from store_helpers import make_record

import amk.cli
from amk.core.config import open_store
from amk.core.errors import AmkError, FileWriteError, StoreError
from amk.core.records import record_from_dict, record_to_json

RECORDS = [make_record(i) for i in range(400)]
DISK_BYTES = 512 * 1024


@pytest.fixture(params=["tmpfs", "injected"])
def full_disk(request, tmp_path, monkeypatch):
    """(a directory on a disk that is full, or whose writes fail with ENOSPC, and a function that frees it)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if request.param == "tmpfs":
        if os.geteuid() != 0 or shutil.which("mount") is None:
            pytest.skip("mounting a small tmpfs needs root; the 'injected' variant covers this test")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs", str(disk)],
                              capture_output=True, text=True, check=False)
        if done.returncode:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}); the 'injected' variant covers this test")
        request.addfinalizer(lambda: subprocess.run(["umount", "-l", str(disk)], check=False))
        filler = disk / "filler"

        def fill(leave: int = 0) -> None:
            with filler.open("wb", buffering=0) as f:
                try:
                    while True:
                        f.write(b"\0" * 4096)
                except OSError:
                    pass
            if leave:
                os.truncate(filler, max(0, filler.stat().st_size - leave))

        def free() -> None:
            filler.unlink(missing_ok=True)
    else:
        state = {"full": False}
        real_fsync, real_write = os.fsync, os.write

        def no_space(*_):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def fsync(fd):  # what a write-back of delayed allocation reports
            return no_space() if state["full"] and _on_disk(fd) else real_fsync(fd)

        def write(fd, data):
            return no_space() if state["full"] and _on_disk(fd) else real_write(fd, data)

        def _on_disk(fd) -> bool:
            try:
                return os.readlink(f"/proc/self/fd/{fd}").startswith(str(disk))
            except OSError:
                return False

        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "write", write)
        from amk.stores.jsonl import JsonlStore

        real_append_write = JsonlStore._write

        def store_write(self, f, data):
            if state["full"] and str(self.path).startswith(str(disk)):
                f.write(data[: len(data) // 2])  # half of it reached the file, as on a real full disk
                f.flush()
                no_space()
            return real_append_write(self, f, data)

        monkeypatch.setattr(JsonlStore, "_write", store_write)

        def fill(leave: int = 0) -> None:
            state["full"] = True

        def free() -> None:
            state["full"] = False
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AMK_CONFIG", raising=False)
    return disk, fill, free


def amk_run(*args: str):
    """amk with ``-q`` (no progress lines): what is left on stderr is the error alone."""
    result = CliRunner().invoke(amk.cli.main, ["-q", *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def holding_ten_records(url: str) -> str:
    with open_store(url) as store:
        store.append(RECORDS[:10])
    return url


def one_error_line(err: str, *words: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("amk: error: "), err
    assert all(w in lines[0] for w in words), err


def test_an_export_to_a_full_disk_is_one_error_and_leaves_no_partial_file(full_disk, tmp_path):
    disk, fill, _ = full_disk
    with open_store(f"jsonl:{tmp_path / 'c.jsonl'}") as store:
        store.append(RECORDS)
    (disk / "out.jsonl").write_text("the previous export\n")
    fill()
    code, _, err = amk_run("--store", "jsonl:c.jsonl", "corpus", "export", "-o", str(disk / "out.jsonl"))
    assert code == 1
    one_error_line(err, "cannot write the export", "out.jsonl", "free disk space")
    assert (disk / "out.jsonl").read_text() == "the previous export\n"
    assert sorted(p.name for p in disk.iterdir() if p.name != "filler") == ["out.jsonl"]


def test_a_jsonl_store_on_a_full_disk_refuses_the_append_stays_readable_and_appends_once_freed(full_disk):
    disk, fill, free = full_disk
    url = holding_ten_records(f"jsonl:{disk / 'c.jsonl'}")
    fill(leave=2048)
    with open_store(url) as store, pytest.raises(StoreError, match="free disk space"):
        store.append(RECORDS[10:])
    free()
    with open_store(url) as store:
        assert [record_to_json(r) for r in store.query()][:10] == [record_to_json(r) for r in RECORDS[:10]]
        store.append([RECORDS[399]])  # the torn tail of the failed append is set aside first
        got = [record_to_json(r) for r in store.query()]
        assert got[-1] == record_to_json(RECORDS[399])
        assert set(got) <= {record_to_json(r) for r in RECORDS}
        assert all("torn" in p.reason for p in store.problems())


def test_a_sqlite_store_on_a_full_disk_refuses_the_append_and_keeps_every_record(full_disk):
    disk, fill, free = full_disk
    url = holding_ten_records(f"sqlite:{disk / 'c.sqlite'}")
    fill(leave=4096)
    try:
        with open_store(url) as store:
            store.append(RECORDS * 3)
    except AmkError as exc:
        assert "sqlite" in str(exc)
    free()
    with open_store(url) as store:
        assert store.count() in (10, 10 + 3 * len(RECORDS))  # the whole transaction, or none of it
        assert store.problems() == []


def test_a_migration_on_a_full_disk_is_one_error_and_leaves_the_corpus_as_it_was(full_disk):
    disk, fill, _ = full_disk
    path = disk / "c.jsonl"
    path.write_text("".join(json.dumps(ORIGINAL) + "\n" for _ in range(300)))
    before = path.read_bytes()
    fill()
    code, _, err = amk_run("--store", f"jsonl:{path}", "corpus", "migrate")
    assert code == 1 and "Traceback" not in err
    one_error_line(err, str(path))
    assert path.read_bytes() == before
    with open_store(f"jsonl:{path}") as store:
        assert [r for r in store.query()] == [record_from_dict(ORIGINAL)] * 300


def test_tune_state_and_report_on_a_full_disk_are_one_error(full_disk):
    disk, fill, _ = full_disk
    fill()
    code, _, err = amk_run("--store", "memory:", "tune", "--workload", "decode:m", "--shape",
                           "hidden=2048,n_layers=16,n_heads=32,n_kv_heads=8,head_dim=64,intermediate=8192,vocab=128256",
                           "--device", "h100", "--backend", "roofline", "--budget", "2", "--state",
                           str(disk / "run.state.json"), "--report-dir", str(disk))
    assert code == 1
    one_error_line(err.split("\n", 1)[-1] if err.startswith("amk: a new run") else err, "cannot write the tune state",
                   "free disk space")


def test_a_model_saved_on_a_full_disk_is_one_error_and_the_previous_model_still_loads(full_disk):
    import numpy as np

    from amk.rankers.knn import KNNRanker

    disk, fill, _ = full_disk
    rng = np.random.default_rng(0)
    X = rng.random((200, 4))
    KNNRanker().fit(X, X[:, 0]).save(disk / "model")
    bigger = KNNRanker().fit(np.tile(X, (40, 1)), np.tile(X[:, 0], 40))
    fill()
    with pytest.raises(FileWriteError, match="cannot write the model file .* free disk space"):
        bigger.save(disk / "model")
    assert len(KNNRanker.load(disk / "model").X_) == 200
