"""Which prompts of a chunk prefill together: prefix-sharing groups and memory-bounded micro-batches.

Pure planning on token ids (no tensors), so the plan can be tested and reasoned about on its own:
DART's prompts for one example are nested (chat template, problem, expert steps 1..t), and running
their common prefix once instead of once per prompt is most of the prefill cost saved.
"""

from __future__ import annotations

from collections.abc import Sequence


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix of two token lists."""
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def share_groups(
    prompts: Sequence[Sequence[int]], min_shared: int, forward_cost: int
) -> tuple[list[tuple[int, list[int]]], list[int]]:
    """Plan prefix sharing: `([(shared length, prompt indices), ...], indices prefilled on their own)`.

    Prompts sorted by their token ids put every family of nested prompts (one DART example's
    prefixes) next to each other; a dynamic program then cuts that order into runs that minimise the
    prefill tokens: a run sharing `s` tokens (its common prefix, capped so that every prompt keeps
    at least one token of its own; at least `min_shared`) costs `s + k * (longest - s)` plus two
    forwards of overhead (`forward_cost` tokens each), a prompt on its own costs its length.
    """
    n = len(prompts)
    order = sorted(range(n), key=lambda u: (list(prompts[u]), u))
    lengths = [len(prompts[u]) for u in order]
    adjacent = [common_prefix(prompts[order[i]], prompts[order[i + 1]]) for i in range(n - 1)]
    best = [0] * (n + 1)
    cut: list[tuple[int, int]] = [(0, 0)] * (n + 1)  # (start of the last run, its shared length; 0: alone)
    for j in range(1, n + 1):
        best[j], cut[j] = best[j - 1] + lengths[j - 1], (j - 1, 0)
        common, shortest, longest = lengths[j - 1], lengths[j - 1], lengths[j - 1]
        for i in range(j - 2, -1, -1):  # the run order[i:j]
            common = min(common, adjacent[i])
            shortest, longest = min(shortest, lengths[i]), max(longest, lengths[i])
            shared = min(common, shortest - 1)
            if shared < min_shared:  # only shrinks as the run grows to the left
                break
            cost = best[i] + 2 * forward_cost + shared + (j - i) * (longest - shared)
            if cost < best[j]:
                best[j], cut[j] = cost, (i, shared)
    groups, rest, j = [], [], n
    while j > 0:
        i, shared = cut[j]
        if shared:
            groups.append((shared, order[i:j]))
        else:
            rest.append(order[i])
        j = i
    return groups[::-1], sorted(rest)


def micro_batches(members: list[int], prompts: Sequence[Sequence[int]], prefill_tokens: int) -> list[list[int]]:
    """Split prompts (longest first) into batches of about `prefill_tokens` padded tokens."""
    batches: list[list[int]] = []
    current: list[int] = []
    for u in sorted(members, key=lambda u: (-len(prompts[u]), u)):
        if current and len(prompts[current[0]]) * (len(current) + 1) > prefill_tokens:
            batches.append(current)
            current = []
        current.append(u)
    if current:
        batches.append(current)
    return batches
