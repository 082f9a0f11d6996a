"""Certificate request: inline validation, Next blocked while invalid, SAN add/remove, saving."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Button, Input, Static

from app.plan import load_plan
from screens.cert_request import CertRequestScreen
from screens.cert_review import CertReviewScreen
from screens.widgets.san_list import SanList
from tests.tui.conftest import AppFactory


def message_of(screen: CertRequestScreen, field_id: str) -> str:
    return str(screen.query_one(f"#{field_id}-field .field-message", Static).render())


async def test_invalid_country_shows_message_and_blocks_next(make_app: AppFactory) -> None:
    app = make_app("certificate")
    async with app.run_test(size=(100, 32)) as pilot:
        screen = app.screen
        assert isinstance(screen, CertRequestScreen)
        screen.query_one("#country", Input).focus()
        await pilot.press("U", "K")
        await pilot.pause()
        assert "use GB" in message_of(screen, "country")
        assert screen.query_one("#next", Button).disabled
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert app.screen is screen  # still here
        # fixing it unblocks Next
        screen.query_one("#country", Input).value = "kr"
        await pilot.pause()
        assert message_of(screen, "country") == ""
        assert not screen.query_one("#next", Button).disabled


async def test_bad_common_name_and_email_messages(make_app: AppFactory) -> None:
    app = make_app("certificate")
    async with app.run_test(size=(100, 32)) as pilot:
        screen = app.screen
        assert isinstance(screen, CertRequestScreen)
        screen.query_one("#common-name", Input).value = ""
        screen.query_one("#email", Input).value = "ops@"
        screen.query_one("#ca-days", Input).value = "ten"
        await pilot.pause()
        assert message_of(screen, "common-name") == "required"
        assert message_of(screen, "email") != ""
        assert "whole number" in message_of(screen, "ca-days")
        problems = screen.problems()
        assert len(problems) == 3
        assert screen.query_one("#next", Button).disabled


async def test_validity_longer_than_ca_is_blocked(make_app: AppFactory) -> None:
    app = make_app("certificate")
    async with app.run_test(size=(100, 32)) as pilot:
        screen = app.screen
        assert isinstance(screen, CertRequestScreen)
        screen.query_one("#ca-days", Input).value = "100"
        screen.query_one("#cert-days", Input).value = "200"
        await pilot.pause()
        assert any("cannot outlive its CA" in p for p in screen.problems())
        assert screen.query_one("#next", Button).disabled


async def test_san_add_remove_and_automatic_entries(make_app: AppFactory) -> None:
    app = make_app("certificate")
    async with app.run_test(size=(100, 32)) as pilot:
        screen = app.screen
        assert isinstance(screen, CertRequestScreen)
        sans = screen.query_one(SanList)
        screen.query_one("#address", Input).value = "198.18.0.2"
        await pilot.pause()
        assert ("198.18.0.2", "registry address") in sans.automatic
        san_input = screen.query_one("#san-input", Input)
        san_input.focus()
        await pilot.press(*"bad_name!", "enter")
        await pilot.pause()
        assert "bad_name!" not in sans.sans
        assert str(screen.query_one("#san-message", Static).render()) != ""
        san_input.value = "mirror.example.internal"
        await pilot.press("enter")
        await pilot.pause()
        assert "mirror.example.internal" in sans.sans
        assert san_input.value == ""
        # adding an automatic one again is refused as a duplicate
        san_input.value = "198.18.0.2"
        await pilot.press("enter")
        await pilot.pause()
        assert "already in the list" in str(screen.query_one("#san-message", Static).render())
        # remove it again with its button
        row_button = next(
            button for button in screen.query(".san-remove").results(Button)
            if button.tooltip == "Remove mirror.example.internal"
        )
        row_button.press()
        await pilot.pause()
        assert "mirror.example.internal" not in sans.sans


async def test_valid_input_advances_and_saves_the_plan(
    make_app: AppFactory, plan_path: Path
) -> None:
    app = make_app("certificate")
    async with app.run_test(size=(100, 32)) as pilot:
        screen = app.screen
        assert isinstance(screen, CertRequestScreen)
        screen.query_one("#common-name", Input).value = "registry.example.internal"
        screen.query_one("#address", Input).value = "198.18.0.2"
        screen.query_one("#country", Input).value = "KR"
        screen.query_one("#organization", Input).value = "Example Corp"
        await pilot.pause()
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert isinstance(app.screen, CertReviewScreen)
    saved = load_plan(plan_path)
    assert saved.certificate.common_name == "registry.example.internal"
    assert saved.certificate.country == "KR"
    assert saved.registry.address == "198.18.0.2"
    assert "198.18.0.2" in saved.all_sans()


async def test_a_san_typed_as_a_url_says_drop_the_scheme_and_port(make_app: AppFactory) -> None:
    app = make_app("certificate")
    async with app.run_test(size=(100, 32)) as pilot:
        screen = app.screen
        assert isinstance(screen, CertRequestScreen)
        screen.query_one("#san-input", Input).focus()
        await pilot.press(*"https://reg.example:5000", "enter")
        await pilot.pause()
        message = str(screen.query_one("#san-message", Static).render())
        assert "drop the scheme and port" in message and "reg.example" in message
        assert "https://reg.example:5000" not in screen.query_one(SanList).sans
