"""What every ftui screen shares: worker state changes go to the app's one error funnel (``Worker.StateChanged``
does not bubble, so each screen forwards its own; harlequin's pattern)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Awaitable, Generic

from textual.screen import ModalScreen, Screen, ScreenResultType
from textual.worker import Worker

if TYPE_CHECKING:
    from .app import FtuiApp


class Funnel:
    # a named handler (not @on): Textual finds it through the MRO, mixins included, and runs it besides any
    # @on(Worker.StateChanged) handler a screen has of its own
    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        self.app.worker_failed(event)


class FtuiScreen(Funnel, Screen):
    """A workspace screen."""

    if TYPE_CHECKING:  # the app every workspace runs in, with its state (service, profile, model_id, …)
        @property
        def app(self) -> FtuiApp: ...

    async def call_service(self, title: str, call: Awaitable[Any]) -> tuple[bool, Any]:
        """Await a backend call a person started: (True, its result), or (False, None) once a failure the backend
        explained (a ServiceError) is shown as a notification titled ``title``."""
        from ftui.service.errors import ServiceError

        try:
            return True, await call
        except ServiceError as e:
            self.notify(e.problem.message, title=title, severity="error", timeout=8)
            return False, None


class FtuiModal(Funnel, ModalScreen[ScreenResultType], Generic[ScreenResultType]):
    """A dialog (a form, a question, help)."""
