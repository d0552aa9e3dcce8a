"""The search's population board survives `resume` (#24.5): what the trials posted before the driver stopped is
kept in Tune's experiment state by the board's callback and given back to the new board, on a real local Ray."""

from __future__ import annotations

import pickle
from types import SimpleNamespace

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def test_a_resumed_search_board_still_knows_who_left_chance(ray_session: None) -> None:
    from raytune_llm.actors import named
    from raytune_llm.actors.population import EndBoard, ask, board_name, start_board

    name = start_board("/tmp/rtl-board-test")
    assert name == board_name("/tmp/rtl-board-test")
    keeper = EndBoard(name)
    pickled = pickle.dumps(keeper)  # what Tune saved with the search when it started
    for trial, step, left in (("a", 2, False), ("a", 3, True), ("a", 6, True), ("b", 2, False)):
        assert ask(name, trial, step / 10, left) is not None  # the trials post as they evaluate ...
        keeper.on_trial_result(0, [], SimpleNamespace(trial_id=trial),  # ... and report the same to Tune
                               {"step": step, "total_steps": 10, "left_chance": left})
    state = keeper.get_state()  # Tune's experiment checkpoint
    named.stop(name)  # the driver is gone, and its board with it

    name = start_board("/tmp/rtl-board-test")  # `resume`: a new, empty board ...
    assert ask(name, "c", 0.5, False) is False
    restored = pickle.loads(pickled)
    restored.set_state(state)  # ... given back what the trials had posted
    assert ask(name, "c", 0.5, False) is True  # a had left chance at 30% of its budget
    assert ask(name, "c", 0.2, False) is False  # ... not yet at 20%
    assert ask(name, "a", 0.5, False) is False  # a's own posts never count for a
    restored.on_experiment_end([])
