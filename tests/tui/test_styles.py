"""Opening a workspace parses the stylesheets no more than its own CSS needs, and styles it in the theme in force.

Textual marks every new screen's styles stale, so a workspace opened for the first time re-parsed every stylesheet
two or three times from scratch (~40 ms on opening it, ~10 ms before the first paint). The app's workspace factory
starts a screen current when nothing changed since the last parse; these tests hold that, and that what the
re-parse did for the colours still happens (a theme changed before a workspace opens; the app's own colours, from
which every widget takes its text colour).
"""
from __future__ import annotations

from textual.color import Color
from textual.css.stylesheet import Stylesheet

from ftui.tui.app import FtuiApp
from ftui.tui.widgets.summary import Summary
from tests.helpers import SAMPLES
from tests.tui.helpers import settle, test_config


def colours(app: FtuiApp) -> tuple[Color, Color]:
    variables = app.get_css_variables()
    return Color.parse(variables["foreground"]), Color.parse(variables["background"])


async def test_workspaces_open_with_one_parse_and_the_theme_in_force(monkeypatch):
    reparses: list[Stylesheet] = []
    real = Stylesheet.reparse

    def counted(self) -> None:  # a spy: Textual's own re-parse runs
        reparses.append(self)
        real(self)

    monkeypatch.setattr(Stylesheet, "reparse", counted)
    app = FtuiApp(SAMPLES / "broken.jsonl", config=test_config())
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        assert reparses == []  # up to the findings on screen: parsed once, never again
        foreground, background = colours(app)
        summary = app.screen.query_one(Summary)
        # its text in the theme's foreground: styled before the app had its colours, it came out transparent
        assert summary.visual_style.foreground == foreground
        assert summary.visual_style.background == background

        await pilot.press("f3")  # Jobs, the first time: its own CSS file joins the stylesheet, one re-parse
        await pilot.pause()
        assert app.current_mode == "jobs"
        assert len(reparses) == 1

        app.theme = "textual-light"  # Textual re-parses for the new variables
        await pilot.pause()
        assert len(reparses) == 2
        light_fg, light_bg = colours(app)
        assert light_bg != background
        await pilot.press("f4")  # Chat, the first time, after the theme changed
        await pilot.pause()
        assert app.current_mode == "chat"
        assert len(reparses) == 3
        assert app.screen.styles.background == light_bg
        assert app.screen.visual_style.foreground == light_fg
        await pilot.press("f2")  # back to Data, made before the change: restyled
        await pilot.pause()
        assert app.screen.styles.background == light_bg
        assert app.screen.query_one(Summary).visual_style.foreground == light_fg
