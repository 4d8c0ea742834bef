"""The progress bar of long loops (encoding texts, writing recommendations): one look for all."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


@contextmanager
def progress_bar(total: int, description: str, shown: bool = True) -> Iterator[Callable[[int], None]]:
    """A progress bar over ``total`` units while the block runs, as the function that advances it by n;
    one that does nothing where not ``shown``."""
    if not shown:
        yield lambda count: None
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn()) as bar:
        task = bar.add_task(description, total=total)
        yield lambda count: bar.advance(task, count)
