"""Progress of long operations: a rich bar on a terminal, a plain line per step elsewhere, nothing when off."""

import io
import os
import pty

from amk.tuning.progress import Progress


def test_off_a_terminal_each_step_is_one_plain_line_with_the_rate_and_the_time_left():
    stream = io.StringIO()
    with Progress("copy", 30_000, unit="records", stream=stream) as progress:
        for _ in progress.counted(range(30_000), every=10_000):
            pass
    lines = stream.getvalue().splitlines()
    assert [line.split()[1] for line in lines] == ["0/30000", "10000/30000", "20000/30000", "30000/30000"]
    assert "records/s" in lines[-1] and "left 0:00" in lines[-1] and "\x1b" not in stream.getvalue()


def test_an_unknown_total_still_counts_and_a_status_follows_the_figures():
    stream = io.StringIO()
    progress = Progress("import a.json", unit="records", stream=stream)
    progress.update(5, status="read")
    assert stream.getvalue().startswith("import a.json: 5 records (") and stream.getvalue().endswith("  read\n")


def test_off_prints_nothing():
    stream = io.StringIO()
    with Progress("tune", 3, mode="off", stream=stream) as progress:
        progress.update(3, status="best 1 us")
    assert stream.getvalue() == ""


def test_on_a_terminal_it_is_a_bar_with_the_count_the_rate_and_the_status():
    leader, follower = pty.openpty()
    with open(follower, "w", closefd=True) as terminal, \
            Progress("tune", 4, unit="evaluations", stream=terminal) as progress:
        assert progress.mode == "bar"
        for done in range(5):
            progress.update(done, status="best 12.500 us")
    drawn = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        drawn += chunk
    os.close(leader)
    text = drawn.decode(errors="replace")
    assert "4/4" in text and "evaluations/s" in text and "best 12.500 us" in text and "━" in text


def test_an_import_counts_the_entries_it_read_not_its_notes(run_amk, tmp_path):
    import json

    (tmp_path / "mm.autotune.json").write_text(json.dumps({"key": [8], "configs_timings": [
        [{"kwargs": {"BLOCK": b}, "num_warps": 4, "num_stages": 3, "num_ctas": 1}, [0.5, 0.4, 0.6]] for b in (64, 128)]}))
    out = run_amk("corpus", "import", "mm.autotune.json", "--device", "h100")  # one note: the device from --device
    assert out.returncode == 0, out.stderr
    assert "amk: note:" in out.stderr
    assert [line.split()[2] for line in out.stderr.splitlines() if line.startswith("import ")] == ["0", "2"]
