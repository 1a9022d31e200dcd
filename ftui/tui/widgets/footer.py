"""Textual's Footer, rebuilt only when what it shows changes.

The stock Footer recomposes (a new widget per key, each restyled) on every binding change: focus moving from the
tree to the findings, a filter, a tab. Several in one frame each rebuilt ~25 keys — most of the UI stall after a
large analysis. Here one rebuild per burst (50 ms) at most, and none when the keys shown are the same."""

from __future__ import annotations

from textual.widgets import Footer as _Footer


class Footer(_Footer):
    _pending = False
    _shown: tuple | None = None

    PALETTE_WIDTH = 12  # the palette key docked at the right ("^p palette" with its border and padding)

    def on_resize(self) -> None:
        self.compact = self.size.width < 120  # tighter keys where 80 columns must show the workspace keys
        self.call_after_refresh(self._fit_palette)

    def _fit_palette(self) -> None:
        """The palette key only where the keys leave room for it: keys that run under the key docked at the right
        mixed their cells with its own ("palettei", "^ppale tte" — at 80 columns everywhere, at 130 in Chat).
        Left out, ctrl+p still works and F1's help names it. The other keys do not move when it comes or goes, so
        the answer is stable."""
        keys = [k for k in self.children if not k.has_class("-command-palette")]
        if not keys or not self.size.width:
            return
        needed = max(k.region.right + k.styles.margin.right for k in keys) - self.region.x
        fits = needed + self.PALETTE_WIDTH <= self.size.width
        if fits != self.show_command_palette:
            self.show_command_palette = fits
            self.refresh(recompose=True)

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
            self.call_after_refresh(self._fit_palette)
