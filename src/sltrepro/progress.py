"""Progress bars for long loops that read well on a terminal and in a log file."""

import sys
from collections.abc import Iterable

from tqdm.auto import tqdm


def progress(
    iterable: Iterable | None = None,
    *,
    desc: str = "",
    total: int | None = None,
    verbose: bool = True,
    **kwargs,
):
    """A tqdm bar: live on a terminal, a line every 30 s in a log file, silent if not verbose."""
    on_terminal = sys.stderr.isatty()
    return tqdm(
        iterable,
        desc=desc,
        total=total,
        disable=not verbose,
        mininterval=0.1 if on_terminal else 30.0,
        dynamic_ncols=on_terminal,
        ascii=not on_terminal,
        file=sys.stderr,
        **kwargs,
    )
