"""Textual's Footer, rebuilt only when what it shows changes.

The stock Footer recomposes (a new widget per key, each restyled) on every binding change: focus moving from the
tree to the findings, a filter, a tab. Several in one frame each rebuilt ~25 keys — most of the UI stall after a
large analysis. Here one rebuild per burst (50 ms) at most, and none when the keys shown are the same."""

from __future__ import annotations

from textual.widgets import Footer as _Footer


class Footer(_Footer):
    _pending = False
    _shown: tuple | None = None

    def on_resize(self) -> None:
        self.compact = self.size.width < 120  # tighter keys where 80 columns must show the workspace keys
        # below 100 columns the keys run under the palette key docked at the right, whose cells then mixed with
        # theirs ("palettei"): there it is left out (ctrl+p works, and F1's help names it)
        self.show_command_palette = self.size.width >= 100

    def bindings_changed(self, screen) -> None:
        self._bindings_ready = True
        if not screen.app.app_focus:
            return
        if self.is_attached and screen is self.screen and not self._pending:
            self._pending = True
            self.set_timer(0.05, self._rebuild)  # a burst of changes (focus, filters, tabs): one rebuild

    async def _rebuild(self) -> None:
        self._pending = False
        shown = tuple((key, b.description, enabled) for key, (_, b, enabled, _t) in self.screen.active_bindings.items()
                      if b.show)
        if shown != self._shown:
            self._shown = shown
            await self.recompose()
