"""The registry's accounts (push and pull roles), as a modal opened from the Status step.

Lists ``app.accounts`` metadata (never a password) and adds, rotates or revokes an account in a
thread worker: the local credential file first, then the registry host's htpasswd (and the
front when the push accounts change) through ``Deployment.sync_steps``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Input, Label, Select, Static

from app.errors import RegwizError
from app.plan import Plan, Secrets
from screens.host_key_prompt import ask_host_key_policy
from screens.messages import AccountsChanged

if TYPE_CHECKING:
    from screens.app import RegwizApp

JOB = "accounts"


class AccountsModal(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "close", "Close")]

    def __init__(self, plan: Plan, secrets: Secrets, wizard: RegwizApp) -> None:
        super().__init__(classes="modal")
        self.plan = plan
        self.secrets = secrets
        self.wizard = wizard

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Registry accounts", classes="dialog-title")
            yield Static("push: push, pull, delete (operators, CI) · pull: pull only (the "
                         "nodes). Each credential is credentials/NAME.json next to the plan "
                         "(0600, Docker config.json). Passwords are never shown here.",
                         classes="dialog-body", markup=False)
            yield DataTable(id="accounts-table", cursor_type="row")
            with Horizontal(classes="dialog-buttons"):
                yield Input(placeholder="new account name", id="account-name", compact=True)
                yield Select([("push", "push"), ("pull", "pull")], value="pull",
                             allow_blank=False, id="account-role", compact=True)
                yield Button("Add", id="add", compact=True)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Rotate selected", id="rotate", compact=True)
                yield Button("Revoke selected", id="revoke", variant="error", compact=True)
                yield Button("Close", id="close", compact=True)
            yield Static("", id="accounts-result", markup=False)

    def on_mount(self) -> None:
        table = self.query_one("#accounts-table", DataTable)
        for key in ("name", "role", "created", "rotated"):
            table.add_column(key, key=key)
        self.show_accounts()

    def show_accounts(self) -> None:
        from app.accounts import AccountStore

        table = self.query_one("#accounts-table", DataTable)
        table.clear()
        try:
            accounts = AccountStore(self.plan).load()
        except RegwizError as error:
            self.query_one("#accounts-result", Static).update(f"✗ {error.message}")
            return
        for account in accounts:
            table.add_row(account.name, account.role, account.created[:19],
                          account.rotated[:19] or "-", key=account.name)
        if not accounts:
            self.query_one("#accounts-result", Static).update(
                "no accounts yet: the first deploy creates operator (push) and cluster (pull)")

    def selected(self) -> str | None:
        table = self.query_one("#accounts-table", DataTable)
        if table.row_count == 0:
            return None
        return str(table.get_row_at(table.cursor_row)[0])

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        button = event.button.id
        if button == "close":
            self.dismiss(None)
            return
        if any(not w.is_finished for w in self.workers):
            return
        if button == "add":
            name = self.query_one("#account-name", Input).value.strip()
            role = str(self.query_one("#account-role", Select).value)
            self.change("add", name, role)
        elif (selected := self.selected()) is not None:
            self.change(str(button), selected, "")

    def action_close(self) -> None:
        self.dismiss(None)

    @work(thread=True, exit_on_error=False, group=JOB, name="Accounts")
    def change(self, action: str, name: str, role: str) -> None:
        from app.accounts import AccountStore
        from app.connections import open_registry_transport
        from app.deploy import Deployment
        from app.steps import Outcome, run_steps

        self.post_message(AccountsChanged(f"{action} {name}…", done=False))
        store = AccountStore(self.plan)
        try:
            if action == "add":
                account = store.add(name, role)
            elif action == "rotate":
                account = store.rotate(name)
            else:
                account = store.revoke(name)
            plan, secrets = self.plan, self.secrets
            policy = ask_host_key_policy(self.wizard)  # made in the worker that connects
            with Deployment(plan, secrets, connect=lambda: open_registry_transport(
                    plan, secrets, policy)) as deployment:
                results = run_steps(deployment.sync_steps())
        except RegwizError as error:
            self.post_message(AccountsChanged(f"✗ {error.message}", done=True))
            return
        failed = [r for r in results if r.outcome is Outcome.FAILED]
        text = (f"✓ {action} {name}: the registry host is updated" if not failed else
                f"✗ {action} {name} saved here, but the registry host was not updated: "
                f"{failed[0].message} (deploy again to retry)")
        if account.role == "pull" and action in ("rotate", "revoke"):
            from app.accounts import nodes_after_pull_change

            try:
                line, _ = nodes_after_pull_change(plan, account.name, secrets, policy,
                                                  revoked=action == "revoke")
            except RegwizError as error:
                line = f"the nodes were not updated: {error.message}"
            text += f"\n{line}" if line else ""
        self.post_message(AccountsChanged(text, done=True))

    def on_accounts_changed(self, message: AccountsChanged) -> None:
        self.query_one("#accounts-result", Static).update(message.text)
        if message.done:
            self.show_accounts()
