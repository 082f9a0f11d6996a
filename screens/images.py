"""Copy images into the registry (``regwiz images push``) from the Status step, with live
progress per image: the references (or a ``docker save`` archive, or an OCI layout directory)
are read here, the copy runs in a thread worker that polls ``is_cancelled`` between blobs, and
every image's progress comes back as an ``ImageProgressed`` message."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Input, Label, Static
from textual.worker import get_current_worker

from app.errors import RegwizError
from app.paths import expand_user
from app.status import format_bytes
from screens.messages import ImageProgressed, ImagesFinished, JobFailed

if TYPE_CHECKING:
    from app.images.copy import ImageEvent, ImagesReport
    from app.images.endpoint import RegistryEndpoint
    from app.images.request import PushRequest
    from app.images.sources import ImageSource, SourceImage
    from app.plan import Plan, Secrets

JOB = "images"
COLUMNS = ("image", "state", "blobs", "sent")


class ImagesModal(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "close", "Close")]

    def __init__(self, plan: Plan, secrets: Secrets) -> None:
        super().__init__(classes="modal")
        self.plan, self.secrets = plan, secrets
        self.tallies: dict[str, list[int]] = {}  # image -> [blobs sent, present, bytes]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="images-dialog"):
            yield Label(f"Copy images into {self.plan.registry_reference}", classes="dialog-title")
            yield Static("Image references (space-separated), or a docker save archive or an "
                         "OCI layout folder. Digests are kept; blobs already there are not sent "
                         "again.", classes="dialog-body", markup=False)
            yield Input(placeholder="registry.k8s.io/pause:3.9 docker.io/library/busybox:1.36",
                        id="image-refs", compact=True)
            with Horizontal(classes="dialog-buttons"):
                yield Input(placeholder="or: archive .tar / OCI folder", id="image-path",
                            compact=True)
                yield Input(placeholder="repository (for tag-only names)",
                            id="image-repository", compact=True)
            yield DataTable(id="images-table", cursor_type="row")
            yield Static("", id="images-result", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Push", id="push", variant="primary", compact=True)
                yield Button("Cancel", id="cancel-images", disabled=True, compact=True)
                yield Button("Close", id="close", compact=True)

    def on_mount(self) -> None:
        table = self.query_one("#images-table", DataTable)
        for key in COLUMNS:
            table.add_column(key, key=key)

    # --- what was asked ------------------------------------------------------------------------

    def request(self) -> PushRequest:
        from app.images.request import PushRequest

        refs = tuple(self.query_one("#image-refs", Input).value.split())
        path_text = self.query_one("#image-path", Input).value.strip()
        repository = self.query_one("#image-repository", Input).value.strip() or None
        if not path_text:
            return PushRequest(refs, repository=repository)
        path = expand_user(path_text)
        if path.is_dir():
            return PushRequest(refs, oci=path, repository=repository)
        return PushRequest(refs, tar=Path(path), repository=repository)

    # --- running -------------------------------------------------------------------------------

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        actions = {"close": self.action_close, "push": self.action_push,
                   "cancel-images": self.action_cancel}
        action = actions.get(event.button.id or "")
        if action is not None:
            action()

    def action_push(self) -> None:
        if self.running:
            return
        try:
            request = self.request()
            from app.images.request import resolve

            source, images = resolve(request)
        except RegwizError as error:
            self.show_result(f"✗ {error.message}" + (f"\nhint: {error.hint}" if error.hint
                                                      else ""))
            return
        table = self.query_one("#images-table", DataTable)
        table.clear()
        self.tallies.clear()
        from app.images.copy import target_name
        from app.images.request import target_endpoint

        try:
            target = target_endpoint(self.plan, self.secrets)
        except RegwizError as error:
            self.show_result(f"✗ {error.message}")
            return
        for image in images:
            name = target_name(target, image)
            self.tallies[name] = [0, 0, 0]
            table.add_row(name, "waiting", "", "", key=name)
        self.set_running(True)
        self.show_result(f"copying {len(images)} image(s)…")
        self.copy(source, images, target)

    @work(thread=True, exit_on_error=False, group=JOB, name="Images")
    def copy(self, source: ImageSource, images: list[SourceImage],
             target: RegistryEndpoint) -> None:
        from app.images.copy import copy_images

        worker = get_current_worker()

        def progressed(event: ImageEvent) -> None:
            self.post_message(ImageProgressed(event))

        try:
            report = copy_images(images, source, target, on_progress=progressed,
                                 should_stop=lambda: worker.is_cancelled)
        except RegwizError as error:
            self.post_message(JobFailed("Images", error.message, error.hint))
            return
        self.post_message(ImagesFinished(report))

    @property
    def running(self) -> bool:
        return any(not worker.is_finished for worker in self.workers)

    def set_running(self, running: bool) -> None:
        self.query_one("#push", Button).disabled = running
        self.query_one("#cancel-images", Button).disabled = not running

    def action_cancel(self) -> None:
        self.workers.cancel_group(self, JOB)
        self.show_result("cancelling: the copy stops before its next blob")

    def action_close(self) -> None:
        if self.running:
            self.workers.cancel_group(self, JOB)
        self.dismiss(None)

    # --- results -------------------------------------------------------------------------------

    def on_image_progressed(self, message: ImageProgressed) -> None:
        self.show_event(message.event)

    def show_event(self, event: ImageEvent) -> None:
        table = self.query_one("#images-table", DataTable)
        tally = self.tallies.setdefault(event.image, [0, 0, 0])
        if event.what == "blob":
            tally[0] += 1
            tally[2] += event.size
        elif event.what == "skipped":
            tally[1] += 1
        state = {"manifest": "copying", "blob": "copying", "skipped": "copying",
                 "done": "✓ copied", "failed": "✗ failed"}.get(event.what, event.what)
        if event.image not in table.rows:
            table.add_row(event.image, "", "", "", key=event.image)
        table.update_cell(event.image, "state", state if event.what != "failed"
                          else f"✗ {event.detail}")
        table.update_cell(event.image, "blobs", f"{tally[0]} sent, {tally[1]} there")
        table.update_cell(event.image, "sent", format_bytes(tally[2]))

    def on_images_finished(self, message: ImagesFinished) -> None:
        self.set_running(False)
        report: ImagesReport = message.report
        good = sum(1 for image in report.images if image.ok)
        failed = [image for image in report.images if not image.ok]
        lines = [f"{good} of {len(report.images)} image(s) copied and checked in "
                 f"{report.seconds:.1f}s, {format_bytes(report.bytes_sent)} sent"]
        lines += [f"✗ {image.target}: {image.message}" for image in failed[:3]]
        self.show_result("\n".join(lines))

    def on_job_failed(self, message: JobFailed) -> None:
        self.set_running(False)
        self.show_result(f"✗ {message.error}" + (f"\nhint: {message.hint}" if message.hint
                                                  else ""))

    def show_result(self, text: str) -> None:
        self.query_one("#images-result", Static).update(text)
