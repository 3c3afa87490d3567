"""`picsaris match candidates|confirm|refuse|rematch`: the matching policy's candidates a guest
answers, and re-matching under a new policy."""

from __future__ import annotations

from collections.abc import Callable

import click

from picsaris_pipeline.cli.common import emit, format_option, one_line_errors
from picsaris_pipeline.orchestration.app import App
from picsaris_pipeline.services.listings import SIMILARITY_DIGITS


@click.command("candidates")
@click.argument("event_id")
@click.option("--attendee", "attendee_id", default=None, help="Only this attendee's candidates.")
@click.option("--status", type=click.Choice(["proposed", "confirmed", "refused"]), default=None)
@format_option
def match_candidates(event_id: str, attendee_id: str | None, status: str | None, fmt: str) -> None:
    """One row per candidate: photo_id,attendee_id,similarity,status,policy_id,model_version."""
    with one_line_errors():
        app = App.from_env()
        app.repo.get_event(event_id)
        rows = [
            {
                "photo_id": c.photo_id,
                "attendee_id": c.attendee_id,
                "similarity": round(c.similarity, SIMILARITY_DIGITS),
                "status": c.status,
                "policy_id": c.policy_id,
                "model_version": c.model_version,
            }
            for c in app.repo.list_candidates(event_id, attendee_id, status)
        ]
        emit(rows, ["photo_id", "attendee_id", "similarity", "status", "policy_id", "model_version"], fmt)


def _photo_and_attendee(command: Callable[..., None]) -> Callable[..., None]:
    """The two arguments of a guest's answer to a candidate."""
    return click.argument("photo_id")(click.argument("attendee_id")(command))


@click.command("confirm")
@_photo_and_attendee
def match_confirm(photo_id: str, attendee_id: str) -> None:
    """The guest is in the photo: the candidate becomes a match (and a reference) and is announced."""
    from picsaris_pipeline.services.confirmations import confirm

    with one_line_errors():
        app = App.from_env()
        answer = confirm(
            app.repo,
            app.publisher(),
            photo_id,
            attendee_id,
            app.face_engine.threshold(),
        )
        click.echo(f"confirmed; matched: {'yes' if answer.matched else 'no'}", err=True)


@click.command("refuse")
@_photo_and_attendee
def match_refuse(photo_id: str, attendee_id: str) -> None:
    """The guest is not in the photo: it is never proposed to them again."""
    from picsaris_pipeline.services.confirmations import refuse

    with one_line_errors():
        refuse(App.from_env().repo, photo_id, attendee_id)
        click.echo("refused; never proposed again", err=True)


@click.command("rematch")
@click.option("--event", "event_id", default=None, help="Only this event (default: every event).")
def match_rematch(event_id: str | None) -> None:
    """Re-match the published photos matched under another matching policy (or before there was one)."""
    from picsaris_pipeline.services.versions import active_version, rematch_for_policy

    with one_line_errors():
        app = App.from_env()
        events = [app.repo.get_event(event_id)] if event_id else app.repo.list_events()
        publisher = app.publisher()
        for item in events:
            version = active_version(item, app.engine.model_version)
            if version != app.engine.model_version:
                click.echo(f"event {item.id}: shows {version}, not the configured version; skipped", err=True)
                continue
            done = rematch_for_policy(app.repo, publisher, item.id, version, app.face_engine.threshold(), app.engine)
            click.echo(f"event {item.id}: {len(done)} photo(s) re-matched", err=True)
