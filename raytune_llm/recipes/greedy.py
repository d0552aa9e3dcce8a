"""A portfolio learnt from recorded runs (Wistuba et al. 2015; Feurer et al. 2022, Auto-sklearn 2.0): start from
nothing and keep adding the candidate that most raises the sum, over tasks, of the best score in the portfolio so
far. Each next recipe therefore covers the tasks the ones before it did worst on."""

from __future__ import annotations

from collections.abc import Mapping


def greedy_portfolio(scores: Mapping[str, Mapping[str, float]], k: int) -> list[str]:
    """Up to `k` candidate keys, in the order chosen. `scores[candidate][task]`: the candidate's normalised score
    on the task (1 = the task's best recorded run, 0 = at chance or failed); a task a candidate was not run on
    counts 0. Ties go to the candidate listed first; a candidate that adds nothing is not added."""
    tasks = sorted({task for by_task in scores.values() for task in by_task})
    best = dict.fromkeys(tasks, 0.0)
    chosen: list[str] = []
    for _ in range(min(k, len(scores))):
        gains = {c: sum(max(0.0, s.get(t, 0.0) - best[t]) for t in tasks)
                 for c, s in scores.items() if c not in chosen}
        if not gains:
            break
        pick = max(gains, key=lambda c: gains[c])  # max keeps the first of equals
        if gains[pick] <= 0 and chosen:
            break
        chosen.append(pick)
        best = {t: max(best[t], scores[pick].get(t, 0.0)) for t in tasks}
    return chosen
