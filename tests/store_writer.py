"""A writer process for the store reliability tests: ``python store_writer.py URL WRITER N BATCH GO_FILE``.

Waits until GO_FILE exists (so all writers start together), appends N records of its own in batches of
BATCH, and prints the running total after each append returns.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from store_helpers import make_record

from amk.core.config import open_store


def main() -> None:
    url, writer, n, batch, go = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), Path(sys.argv[5])
    records = [make_record(i, writer=writer) for i in range(n)]
    with open_store(url) as store:
        store.count()  # connect and create the tables before the start signal
        while not go.exists():
            time.sleep(0.005)
        done = 0
        while done < n:
            done += store.append(records[done:done + batch])
            print(done, flush=True)


if __name__ == "__main__":
    main()
