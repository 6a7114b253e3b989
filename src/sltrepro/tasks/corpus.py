"""Text corpora and a byte-level BPE tokenizer for the attention-only language model.

Two sources:

* ``stdlib`` (smoke, cpu): text that ships with every CPython 3.11 installation, so no
  download is ever needed. In this order: the English reference documentation of
  ``pydoc_data.topics`` (the 79 topics joined in sorted-key order), then the source of every
  top-level ``*.py`` module of the standard library directory (``sysconfig`` "stdlib", files in
  sorted name order), each file preceded by a ``# file: <name>`` line. The concatenation is
  cut at ``num_chars`` characters. The text depends only on the CPython version (recorded,
  with the text's SHA-256, by :func:`corpus_fingerprint`), not on the machine.
* a Hugging Face data set or a local ``.txt``/``.jsonl`` file (paper profile): records are
  read in order, their ``text_field`` joined with a separator, and cut at ``num_chars``.
  ``datasets`` is imported only when a hub name is given; it is not a dependency.

The tokenizer is a byte-level BPE (GPT-2 style): text is split into pre-tokens by a regular
expression (a leading space stays with the word), each pre-token is a sequence of UTF-8 bytes
(ids 0-255), and ``vocab_size - 256`` merges are learned greedily, most frequent adjacent pair
first, ties broken by the smaller pair of ids, so training is deterministic. Any string
round-trips exactly: ``decode(encode(s)) == s``.

Training windows can carry repeated spans (:class:`RepeatSpans`): a span of a window copied
later into the same window, the cpu-scale stand-in for the long-range repeats of web text
that let a small model form induction heads within a short run.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import sysconfig
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np
import torch

# GPT-2's pre-tokenizer pattern without the \p{L} classes (``re`` lacks them): contractions,
# letters with an optional leading space, digits, runs of anything else (underscore included),
# whitespace. The alternatives cover every character, so no text is lost.
PRETOKEN = re.compile(
    r"""'s|'t|'re|'ve|'m|'ll|'d| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+"""
)
SEPARATOR = "\n\n"


# -- corpora ---------------------------------------------------------------------------------
def stdlib_corpus(num_chars: int) -> str:
    """The first ``num_chars`` characters of the standard-library text (see module docstring)."""
    if num_chars < 1:
        raise ValueError(f"num_chars must be >= 1, got {num_chars}")
    return join_texts(_stdlib_texts(), num_chars)


def _stdlib_texts() -> Iterable[str]:
    from pydoc_data.topics import topics

    yield "".join(topics[key] for key in sorted(topics))
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py")):
        yield f"# file: {path.name}\n" + path.read_text(encoding="utf-8", errors="replace")


def join_texts(texts: Iterable[str], num_chars: int) -> str:
    """Join texts with a blank line, stopping once ``num_chars`` characters are reached."""
    parts, size = [], 0
    for text in texts:
        parts.append(text)
        size += len(text) + len(SEPARATOR)
        if size >= num_chars:
            break
    return SEPARATOR.join(parts)[:num_chars]


def corpus_from_records(records: Iterable[dict], text_field: str, num_chars: int) -> str:
    """The text of data-set records (dicts) joined in order and cut at ``num_chars``."""

    def texts():
        for i, record in enumerate(records):
            if text_field not in record:
                raise KeyError(f"record {i} has no field {text_field!r}; fields: {list(record)}")
            yield str(record[text_field])

    return join_texts(texts(), num_chars)


def load_text_corpus(
    source: str, *, num_chars: int, text_field: str = "text", split: str = "train"
) -> str:
    """Text from a local ``.txt``/``.jsonl`` file or a Hugging Face data set (streamed).

    ``source`` names an existing local file, or a hub data set such as
    ``stanford-crfm/DSIR-filtered-pile-50M``. A ``.txt`` file is one text; a ``.jsonl`` file
    has one JSON record per line. Hub data sets need the optional package ``datasets``.
    """
    path = Path(source)
    if path.is_file():
        if path.suffix == ".txt":
            return join_texts([path.read_text(encoding="utf-8")], num_chars)
        if path.suffix == ".jsonl":
            return corpus_from_records(_jsonl_records(path), text_field, num_chars)
        raise ValueError(f"{path}: local corpora must be .txt or .jsonl files")
    try:
        import datasets
    except ImportError as err:
        raise ImportError(
            f"loading the corpus {source!r} needs the Hugging Face `datasets` package "
            "(pip install datasets) and network access; the smoke and cpu profiles use the "
            "offline `stdlib` corpus instead"
        ) from err
    records = datasets.load_dataset(source, split=split, streaming=True)
    return corpus_from_records(records, text_field, num_chars)


def _jsonl_records(path: Path) -> Iterable[dict]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def build_corpus(source: str, *, num_chars: int, text_field: str = "text") -> str:
    """``stdlib`` or anything :func:`load_text_corpus` accepts."""
    if source == "stdlib":
        return stdlib_corpus(num_chars)
    return load_text_corpus(source, num_chars=num_chars, text_field=text_field)


def corpus_fingerprint(text: str) -> dict:
    """SHA-256, length and Python version: enough to tell whether two corpora are the same."""
    return {
        "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
        "num_chars": len(text),
        "python": sys.version.split()[0],
    }


# -- tokenizer -------------------------------------------------------------------------------
class ByteBPE:
    """Byte-level BPE: ids 0-255 are bytes, id 256 + i is the i-th learned merge."""

    def __init__(self, merges: list[tuple[int, int]]):
        self.merges = [tuple(m) for m in merges]
        self.ranks = {pair: i for i, pair in enumerate(self.merges)}
        self.pieces = [bytes([b]) for b in range(256)]
        for a, b in self.merges:
            self.pieces.append(self.pieces[a] + self.pieces[b])
        self._cache: dict[str, list[int]] = {}

    @property
    def vocab_size(self) -> int:
        return len(self.pieces)

    @classmethod
    def train(cls, text: str, vocab_size: int) -> ByteBPE:
        """Learn ``vocab_size - 256`` merges on ``text`` (deterministic; stops early if no
        pair occurs twice)."""
        if vocab_size < 256:
            raise ValueError(f"vocab_size must be >= 256 (the bytes), got {vocab_size}")
        words = Counter(PRETOKEN.findall(text))
        seqs = [list(w.encode("utf-8")) for w in words]
        counts = list(words.values())
        pairs: Counter = Counter()
        where: dict[tuple[int, int], set[int]] = {}  # pair -> words containing it
        for i, seq in enumerate(seqs):
            for pair in pairwise(seq):
                pairs[pair] += counts[i]
                where.setdefault(pair, set()).add(i)
        merges = []
        for new_id in range(256, vocab_size):
            best = min(pairs, key=lambda p: (-pairs[p], p), default=None)
            if best is None or pairs[best] < 2:
                break
            merges.append(best)
            # only the words that contain the pair change: recount just their pairs
            for i in sorted(where.pop(best)):
                old_seq, new_seq = seqs[i], _merge(seqs[i], best, new_id)
                for pair in pairwise(old_seq):
                    pairs[pair] -= counts[i]
                for pair in pairwise(new_seq):
                    pairs[pair] += counts[i]
                    where.setdefault(pair, set()).add(i)
                seqs[i] = new_seq
            pairs = +pairs  # drop pairs whose count fell to zero
        return cls(merges)

    def _encode_word(self, word: str) -> list[int]:
        if word in self._cache:
            return self._cache[word]
        seq = list(word.encode("utf-8"))
        while len(seq) > 1:
            ranked = [(self.ranks.get(p, len(self.ranks)), p) for p in pairwise(seq)]
            rank, pair = min(ranked)
            if rank == len(self.ranks):
                break
            seq = _merge(seq, pair, 256 + rank)
        self._cache[word] = seq
        return seq

    def encode(self, text: str) -> list[int]:
        ids = []
        for word in PRETOKEN.findall(text):
            ids.extend(self._encode_word(word))
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        return b"".join(self.pieces[int(i)] for i in ids).decode("utf-8", errors="replace")

    def to_json(self) -> str:
        return json.dumps({"type": "byte_bpe", "merges": self.merges})

    @classmethod
    def from_json(cls, text: str) -> ByteBPE:
        data = json.loads(text)
        if data.get("type") != "byte_bpe":
            raise ValueError("not a ByteBPE tokenizer file")
        return cls(data["merges"])


def _merge(seq: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    out, i = [], 0
    while i < len(seq):
        if i + 1 < len(seq) and seq[i] == pair[0] and seq[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(seq[i])
            i += 1
    return out


# -- token streams and batches ---------------------------------------------------------------
def split_tokens(tokens: np.ndarray, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """The stream cut once: the first ``1 - val_fraction`` trains, the rest validates."""
    cut = int(round(len(tokens) * (1.0 - val_fraction)))
    return tokens[:cut], tokens[cut:]


def random_windows(
    tokens: torch.Tensor, num: int, length: int, generator: torch.Generator
) -> torch.Tensor:
    """(num, length) windows starting at uniform random offsets of a 1-D token tensor."""
    if len(tokens) < length + 1:
        raise ValueError(f"a stream of {len(tokens)} tokens is too short for {length}-windows")
    starts = torch.randint(len(tokens) - length + 1, (num,), generator=generator)
    return tokens[starts[:, None] + torch.arange(length)]


def fixed_windows(tokens: torch.Tensor, num: int, length: int) -> torch.Tensor:
    """(num, length) windows at evenly spaced offsets: the same every call (evaluation)."""
    if len(tokens) < length:
        raise ValueError(f"a stream of {len(tokens)} tokens is too short for {length}-windows")
    starts = torch.linspace(0, len(tokens) - length, num).long()
    return tokens[starts[:, None] + torch.arange(length)]


@dataclass(frozen=True)
class RepeatSpans:
    """Training windows in which a random span of the window reappears later in it.

    Each window is picked with probability ``fraction``; in a picked window a span of
    ``min_len``..``max_len`` tokens (uniform) at a uniform random start is copied over the
    tokens at a uniform random later start that does not overlap it. The rest of the window
    stays natural text, so such a window still teaches bigrams and n-grams, and only a model
    that looks back to the earlier copy (an induction head) predicts the second one.
    """

    fraction: float
    min_len: int
    max_len: int

    def __post_init__(self):
        if not 0.0 <= self.fraction <= 1.0:
            raise ValueError(f"repeat_spans.fraction must be in [0, 1], got {self.fraction}")
        if not 1 <= self.min_len <= self.max_len:
            raise ValueError(
                f"repeat_spans needs 1 <= min_len <= max_len, got {self.min_len}, {self.max_len}"
            )

    @classmethod
    def from_config(cls, block: dict | None) -> RepeatSpans | None:
        """The ``repeat_spans`` config block, or None when it is absent or its fraction 0
        (then the windows stay untouched and no random number is drawn)."""
        if not block or block["fraction"] == 0:
            return None
        return cls(float(block["fraction"]), int(block["min_len"]), int(block["max_len"]))

    def check_fits(self, length: int) -> None:
        """A ValueError unless two non-overlapping ``max_len`` spans fit a ``length``-window."""
        if 2 * self.max_len > length:
            raise ValueError(
                f"repeat_spans.max_len {self.max_len} is too long for windows of {length} "
                f"tokens: two copies need 2 * max_len <= {length}"
            )

    def apply(self, windows: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """A copy of ``windows`` (B, L) with a span repeated in a random subset of the rows.

        Draws the same random numbers from ``generator`` whichever rows are picked, so the
        stream of random numbers does not depend on the data.
        """
        num, length = windows.shape
        self.check_fits(length)
        picked = torch.rand(num, generator=generator) < self.fraction
        lens = torch.randint(self.min_len, self.max_len + 1, (num,), generator=generator)
        u_src, u_dst = torch.rand(2, num, generator=generator)
        out = windows.clone()
        for i in picked.nonzero().flatten().tolist():
            span = int(lens[i])
            # source in [0, L - 2 span], copy in [source + span, L - span]: both fit, no overlap
            src = int(u_src[i] * (length - 2 * span + 1))
            dst = src + span + int(u_dst[i] * (length - src - 2 * span + 1))
            out[i, dst : dst + span] = windows[i, src : src + span]
        return out


def bigram_table(tokens: np.ndarray, vocab_size: int, smoothing: float = 1e-3) -> np.ndarray:
    """(V, V) empirical P(next | previous) from a token stream, additively smoothed so every
    row is a proper distribution (rows of unseen tokens become uniform)."""
    counts = np.zeros((vocab_size, vocab_size), dtype=np.float64)
    np.add.at(counts, (tokens[:-1], tokens[1:]), 1.0)
    counts += smoothing
    return counts / counts.sum(axis=1, keepdims=True)


def top_ngrams(tokens: np.ndarray, n: int, top: int, vocab_size: int) -> np.ndarray:
    """(top, n) the most frequent n-grams of a stream (ties: smaller codes first)."""
    if vocab_size**n >= 2**62:
        raise ValueError(f"{n}-grams over {vocab_size} tokens do not fit one int64 code")
    grams = np.lib.stride_tricks.sliding_window_view(tokens.astype(np.int64), n)
    codes = grams @ (vocab_size ** np.arange(n - 1, -1, -1, dtype=np.int64))
    uniq, counts = np.unique(codes, return_counts=True)
    order = np.lexsort((uniq, -counts))[:top]
    return (uniq[order, None] // vocab_size ** np.arange(n - 1, -1, -1)) % vocab_size
