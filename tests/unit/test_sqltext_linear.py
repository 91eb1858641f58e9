"""The SQL tokenizer and everything built on it take time linear in the input.

The database is untrusted: a declared type of 200,000 `[` took 44 s to snapshot when each
unclosed `[` was scanned to the end of the text. These are complexity tests, not speed
targets (those are in bench/): each input is measured at two sizes, best of a few runs with
the garbage collector off, and the time may grow only about as much as the size.

Two kinds of input need two yardsticks:
- Long scans (unclosed quotes and brackets, long strings) make few tokens: their time is
  compared directly, n against 32 n. Linear work grows by 32, or up to about twice that
  where the longer text no longer fits in the fastest cache; quadratic work grows by about
  1000. The bound is 200.
- Many tokens (parentheses, operators, words) allocate one object per token, which costs
  more per token at 32 n than at n (caches). Their growth is divided by that of a
  reference that is linear by construction and allocates the same way: about 1 when
  linear, about 30 when quadratic. The bound is 6.
"""

from __future__ import annotations

import gc
import sqlite3
import time
from collections.abc import Callable

import pytest

from persistaudit import sqltext
from persistaudit.schema import read_schema

SCAN_N, SCAN_GROWTH, SCAN_BOUND = 2_500, 32, 200
DENSE_N, DENSE_GROWTH, DENSE_BOUND = 1_000, 32, 6
Make = Callable[[int], Callable[[], object]]
CACHED_LENGTH = sqltext._CACHED_LENGTH

LONG_SCANS: dict[str, Callable[[int], str]] = {
    "unclosed brackets": lambda n: "[" * n,
    "unclosed double quotes": lambda n: '"' * n + "x",
    "unclosed backquotes": lambda n: "`" * n + "x",
    "unclosed string": lambda n: "'" + "a" * n,
    "escaped quotes, unclosed": lambda n: "'" + "''" * (n // 2),
    "long string": lambda n: "'" + "a" * n + "'",
    "unclosed comment": lambda n: "/*" + "*" * n,
}
MANY_TOKENS: dict[str, Callable[[int], str]] = {
    "nested parentheses": lambda n: "(" * (n // 2) + "x" + ")" * (n // 2),
    "unclosed parentheses": lambda n: "(" * n,
    "comment openers": lambda n: "/*" * (n // 2),
    "blob prefixes": lambda n: "x'0" * (n // 3),
    "words": lambda n: "a " * (n // 2),
}


@pytest.fixture(autouse=True)
def no_token_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tokenize every time: a cached small text would take no time at all and make any
    growth look quadratic (the cache itself is a lookup and a copy)."""
    monkeypatch.setattr(sqltext, "_CACHED_LENGTH", -1)


def everything(text: str) -> None:
    """Every function that tokenizes, on the text in each place it can appear."""
    sqltext.normalize(text)
    sqltext.normalize_type(text)
    sqltext.normalize_default(text)
    table = f"CREATE TABLE t (a {text} CHECK ({text})) STRICT"
    sqltext.table_checks(table)
    sqltext.table_options(table)
    sqltext.column_collations(table)
    sqltext.index_parts(f"CREATE INDEX i ON t ({text}) WHERE {text}")
    sqltext.index_key(f"{text} COLLATE nocase", {})
    sqltext.view_body(f"CREATE VIEW v AS {text}")
    sqltext.trigger_body(f"CREATE TRIGGER tr AFTER INSERT ON t BEGIN {text}; END")
    sqltext.word_diff(text, text + " x")
    sqltext.word_diff(text, "y " + text[::-1])


def growth(make: Make, n: int, factor: int, runs: int = 5) -> float:
    """How many times longer factor * n takes than n: the best of runs for each, taken in
    turns so that both sizes meet the same load, with the garbage collector off."""
    small, large = make(n), make(n * factor)
    small()  # warm up
    best = [float("inf"), float("inf")]
    enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(runs):
            for i, func in enumerate((small, large)):
                started = time.perf_counter()
                func()
                best[i] = min(best[i], time.perf_counter() - started)
    finally:
        if enabled:
            gc.enable()
    return best[1] / best[0]


def reference(n: int) -> Callable[[], object]:
    text = "(" * n
    return lambda: sqltext.join([sqltext.Token("op", ch) for ch in text])


def dense_growth(make: Make) -> float:
    """Growth over the reference's from DENSE_N to DENSE_GROWTH * DENSE_N (1: linear)."""
    own = growth(make, DENSE_N, DENSE_GROWTH, runs=3)
    return own / growth(reference, DENSE_N, DENSE_GROWTH, runs=9)


def on_everything(shape: Callable[[int], str]) -> Make:
    def make(n: int) -> Callable[[], object]:
        text = shape(n)
        return lambda: everything(text)

    return make


@pytest.mark.parametrize("shape", list(LONG_SCANS), ids=list(LONG_SCANS))
def test_long_scans_are_linear(shape: str) -> None:
    assert growth(on_everything(LONG_SCANS[shape]), SCAN_N, SCAN_GROWTH) < SCAN_BOUND


@pytest.mark.parametrize("shape", list(MANY_TOKENS), ids=list(MANY_TOKENS))
def test_many_tokens_are_linear(shape: str) -> None:
    assert dense_growth(on_everything(MANY_TOKENS[shape])) < DENSE_BOUND


def test_snapshot_of_a_pathological_column_type_is_linear() -> None:
    """The case found: `CREATE TABLE t (a [[[[...])` declares the type `[[[[...`."""

    def make(n: int) -> Callable[[], object]:
        conn = sqlite3.connect(":memory:")
        conn.execute(f"CREATE TABLE t (a {'[' * n}])")
        return lambda: read_schema(conn)

    assert growth(make, SCAN_N, SCAN_GROWTH) < SCAN_BOUND


def test_word_diff_of_two_unrelated_texts_is_bounded() -> None:
    """Aligning two changed stretches costs their product: past a bound, they are shown
    replaced as a whole."""

    def make(n: int) -> Callable[[], object]:
        old = " ".join(f"a{i}" for i in range(n // 4))
        new = " ".join(f"b{i}" for i in range(n // 4))
        return lambda: sqltext.word_diff(old, new)

    assert dense_growth(make) < DENSE_BOUND


def test_word_diff_marks_the_changed_tokens() -> None:
    wd = sqltext.word_diff
    assert wd("select a, b from t", "select a, c from t") == "select a, [-b-]{+c+} from t"
    assert wd("count(x)", "count(y)") == "count([-x-]{+y+})"
    assert wd("a in (1, 2)", "a in (1, 2, 3)") == "a in (1, 2 {+, 3+})"
    assert wd("a = 1 and b = 2", "a = 1") == "a = 1 [-and b = 2-]"
    long = " ".join(f"c{i}" for i in range(40))
    assert wd(long, long.replace("c20", "d20")) == (
        "... c14 c15 c16 c17 c18 c19 [-c20-]{+d20+} c21 c22 c23 c24 c25 c26 ..."
    )


def test_unclosed_quotes_are_kept_as_written() -> None:
    assert sqltext.normalize("'Abc") == "'Abc"
    assert sqltext.normalize("[Abc") == "[Abc"
    assert sqltext.normalize_type('"my') != sqltext.normalize_type("my")


def test_cached_tokens_are_each_callers_own_list(monkeypatch: pytest.MonkeyPatch) -> None:
    """A cached text gives the same tokens as one tokenized afresh, in a list of its own."""
    monkeypatch.setattr(sqltext, "_CACHED_LENGTH", CACHED_LENGTH)  # undo no_token_cache
    sqltext._cached_tokens.cache_clear()
    sql = "CREATE TABLE t (a TEXT COLLATE nocase, b [x y])"
    first = sqltext.tokens(sql)
    first.append(sqltext.Token("op", ";"))
    again = sqltext.tokens(sql)
    assert again == first[:-1] == sqltext._tokens(sql)
    assert sqltext._cached_tokens.cache_info().hits == 1
