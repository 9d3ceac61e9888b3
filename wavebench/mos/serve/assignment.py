"""Which design list a new rater gets: the one with the fewest live sessions, so lists fill evenly."""
from __future__ import annotations

#: Minutes without a request after which an unfinished session is abandoned and no longer
#: holds its list (``mos serve --abandon-minutes``).
DEFAULT_ABANDON_MINUTES = 60.0


def is_abandoned(completed: bool, last_seen: float, now: float, timeout_s: float) -> bool:
    """An unfinished session not heard from for more than ``timeout_s`` seconds."""
    return not completed and now - last_seen > timeout_s


def choose_list(list_ids, sessions, now: float, timeout_s: float) -> str:
    """The list a new rater gets.

    A list is held by its completed sessions and its live ones (unfinished, heard from within
    ``timeout_s``); an abandoned session holds nothing, so its list goes to the next rater.
    The list held by the fewest sessions wins; ties go to the list with the fewest sessions
    ever started (so a list whose raters keep abandoning is not handed out first), then to
    design order.

    Parameters
    ----------
    list_ids : sequence of str
        The packet's lists, in design order.
    sessions : iterable of (list_id, completed, last_seen)
        Every session of the study (``last_seen`` in epoch seconds).
    now, timeout_s : float

    Returns
    -------
    str

    Examples
    --------
    >>> choose_list(["L01", "L02"], [("L01", True, 0.0)], now=10.0, timeout_s=60.0)
    'L02'
    >>> choose_list(["L01", "L02"], [("L01", False, 0.0), ("L02", True, 0.0)], 100.0, 60.0)
    'L01'
    """
    held = dict.fromkeys(list_ids, 0)
    started = dict.fromkeys(list_ids, 0)
    for list_id, completed, last_seen in sessions:
        if list_id not in held:
            continue
        started[list_id] += 1
        if not is_abandoned(completed, last_seen, now, timeout_s):
            held[list_id] += 1
    order = {list_id: n for n, list_id in enumerate(list_ids)}
    return min(list_ids, key=lambda k: (held[k], started[k], order[k]))
