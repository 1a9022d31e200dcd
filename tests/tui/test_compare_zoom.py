"""The compare view's y axis: cut above the first steps' losses when they would squash every curve into the bottom
rows (the reviews sweep: 9.1 at step 1, 0.02-1.5 for the other 59), whole on `l`."""
from __future__ import annotations

from ftui.tui.widgets.plots import RunsChart, focus_top
from tests.tui.helpers import settle
from tests.tui.test_layout_snapshots import app, sweep_tracks


def _run(first: float, rest: list[float], valid: list[tuple[int, float]] = ()):
    return ("red", [(1, first)] + [(i + 2, v) for i, v in enumerate(rest)], list(valid))


def test_the_axis_is_cut_above_the_rest_when_the_first_steps_tower_over_it():
    runs = [_run(9.1, [1.4, 1.0, 0.6, 0.3, 0.2, 0.1, 0.05, 0.03, 0.02], [(1, 3.0), (5, 0.9)]),
            _run(8.7, [1.5, 1.2, 0.9, 0.7, 0.5, 0.4, 0.3, 0.2, 0.1])]
    top = focus_top(runs)
    assert top is not None and 1.5 < top < 1.6  # the highest loss after the first step, and 5 % of room
    # the validation dot at step 1 (3.0) belongs to the first steps too: it is not what sets the top
    assert focus_top([_run(9.1, [1.4, 1.0, 0.6, 0.3], [(1, 3.0)])]) < 1.5


def test_the_whole_range_stays_when_nothing_towers():
    assert focus_top([_run(2.6, [2.4, 2.2, 2.0, 1.9, 1.8])]) is None  # 2.6 is within 1.5x of the rest
    assert focus_top([_run(9.0, [1.0, 0.9])]) is None  # three points: too few to call any of them the start
    assert focus_top([]) is None and focus_top([("red", [], [])]) is None


async def test_l_shows_the_whole_range_and_back():
    from ftui.tui.compare_screen import CompareScreen
    from ftui.tui.messages import RunsRead

    tracks, evals = sweep_tracks()  # their first steps lose 6.5, the rest 2.6 or less
    a = app()
    async with a.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        a.push_screen(CompareScreen([t.job for t in tracks]))
        await settle(pilot)
        a.screen.post_message(RunsRead(tracks, evals))
        await settle(pilot)
        chart = a.screen.query_one("#compare-loss", RunsChart)
        cut = focus_top(chart.runs)
        assert cut is not None and cut < 3
        assert not chart.whole and f"y cut at {cut:.3g}" in chart.shown_title
        await pilot.press("l")
        await settle(pilot)
        assert chart.whole and a.screen.query_one("#compare-acc", RunsChart).whole
        assert "cut" not in chart.shown_title
        await pilot.press("l")
        await settle(pilot)
        assert not chart.whole and "y cut at" in chart.shown_title
