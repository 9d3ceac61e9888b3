"""Assignment of items and conditions to sessions: cyclic Latin squares (listening-test.md 7)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wavebench_base.errors import InputError

DEFAULT_TRIALS = 20        # ACR rating trials per session when --trials-per-session is auto
MAX_MUSHRA_CONDITIONS = 12  # webMUSHRA #129: more per page is unusable
DEFAULT_PAGES = 12         # MUSHRA pages per session (BS.1534 session guidance)
CHECK_EARLIEST = 3         # gold/trap never in the first 3 rating positions


@dataclass(frozen=True)
class Cell:
    """One rated (item, condition) trial of a list, or one MUSHRA page (``condition`` None).

    Attributes
    ----------
    item : str
        Item key.
    condition : str or None
        Condition name for ACR; None for a MUSHRA page (all conditions).
    filler : bool
        True for items drawn again to pad an incomplete chunk (they get extra votes).
    """

    item: str
    condition: str | None
    filler: bool = False


def trials_per_session(requested: int | None, n_items: int, n_conditions: int) -> int:
    """Rating trials per ACR session: a multiple of C, at most the number of items.

    Raises
    ------
    InputError
        If there are fewer rated items than conditions, or ``requested`` is below C.
    """
    if n_items < n_conditions:
        raise InputError(f"{n_items} rated items for {n_conditions} conditions: a Latin square "
                         f"needs at least as many items as conditions (lower --holdout or add "
                         f"items)")
    wanted = DEFAULT_TRIALS if requested is None else int(requested)
    if wanted < n_conditions:
        raise InputError(f"--trials-per-session {wanted} is below the {n_conditions} conditions")
    return min(wanted, n_items) // n_conditions * n_conditions


def _chunks(items: list, size: int, rng: np.random.Generator) -> list:
    """Shuffle ``items`` and cut them into chunks of ``size``; pad the last with fillers."""
    order = [items[i] for i in rng.permutation(len(items))]
    chunks = [[(it, False) for it in order[i:i + size]] for i in range(0, len(order), size)]
    last = chunks[-1]
    if len(last) < size:
        inside = {it for it, _ in last}
        others = [it for it in order if it not in inside]
        pick = rng.choice(len(others), size - len(last), replace=False)
        last.extend((others[i], True) for i in sorted(pick))
    return chunks


def acr_lists(items: list, conditions: list, votes: int, per_session: int,
              rng: np.random.Generator) -> list:
    """Cyclic Latin-square lists: every (item, condition) cell gets exactly ``votes`` votes.

    Parameters
    ----------
    items : list of str
        Rated items (hold-outs removed).
    conditions : list of str
        C condition names.
    votes : int
        V, replications of the square.
    per_session : int
        B, a multiple of C, at most ``len(items)``.
    rng : np.random.Generator
        Seeded generator (item shuffle and per-replication shifts).

    Returns
    -------
    list of list of Cell
        ``V * C * ceil(I / B)`` lists of B cells each (unordered), replication-major, so
        the first ``C * ceil(I / B)`` lists already give one vote to every cell.
    """
    n_cond = len(conditions)
    chunks = _chunks(items, per_session, rng)
    lists = []
    for _ in range(votes):
        shift = int(rng.integers(n_cond))
        for chunk in chunks:
            for g in range(n_cond):
                lists.append([Cell(item, conditions[(j + g + shift) % n_cond], filler)
                              for j, (item, filler) in enumerate(chunk)])
    return lists


def mushra_lists(items: list, votes: int, pages: int | None,
                 rng: np.random.Generator) -> list:
    """MUSHRA lists: items cut into chunks of P pages, each chunk replicated ``votes`` times."""
    size = min(DEFAULT_PAGES if pages is None else int(pages), len(items))
    if size < 1:
        raise InputError("no items left to rate after the hold-outs")
    chunks = _chunks(items, size, rng)
    return [[Cell(item, None, filler) for item, filler in chunk]
            for _ in range(votes) for chunk in chunks]


def order_ratings(cells: list, rng: np.random.Generator, tries: int = 2000) -> list:
    """Seeded shuffle with no condition more than twice in a row (when that is possible)."""
    order = [cells[i] for i in rng.permutation(len(cells))]
    for _ in range(tries):
        if _max_run(order) <= 2:
            return order
        order = [cells[i] for i in rng.permutation(len(cells))]
    return order  # e.g. one condition only: no order satisfies the rule


def _max_run(cells: list) -> int:
    """Longest run of consecutive cells with the same condition."""
    best = run = 1 if cells else 0
    for a, b in zip(cells, cells[1:]):
        run = run + 1 if (a.condition is not None and a.condition == b.condition) else 1
        best = max(best, run)
    return best


def check_positions(n_ratings: int, n_checks: int, rng: np.random.Generator) -> list:
    """Positions (in the merged sequence) for check trials: not in the first 3, never adjacent.

    Returns
    -------
    list of int
        Sorted positions in ``range(n_ratings + n_checks)``; when the session is too short
        for the rule the checks go at the end, spaced as far as possible.
    """
    total = n_ratings + n_checks
    slots = np.arange(min(CHECK_EARLIEST, n_ratings), total)
    for _ in range(2000):
        if len(slots) < n_checks:
            break
        pos = np.sort(rng.choice(slots, n_checks, replace=False))
        if n_checks < 2 or np.min(np.diff(pos)) > 1:
            return [int(p) for p in pos]
    return list(range(total - n_checks, total))
