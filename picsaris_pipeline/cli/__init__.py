"""`picsaris`: the command line (its commands and columns: README.md, "The command line"). Ids and
tables go to stdout, progress and errors to stderr, so scripts can capture the output.

The groups are assembled here; each command lives in the module of what it works on."""

from __future__ import annotations

import logging

import click

from picsaris_pipeline.cli import attendees, events, matching, photos, privacy, processing, reports, versions
from picsaris_pipeline.services.fault_lines import FaultBoundary


@click.group(cls=FaultBoundary)  # a damaged store ends in one line (services/fault_lines.py)
@click.option("-v", "--verbose", is_flag=True, help="Log what each step does.")
def main(verbose: bool) -> None:
    """picsaris: guests' event photos in, "this guest is in this photo" out."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )


def _group(name: str, help_text: str, *commands: click.Command) -> None:
    group = click.Group(name, help=help_text)
    for command in commands:
        group.add_command(command)
    main.add_command(group)


_group(
    "event",
    "Create, list, archive and switch the model version of events.",
    events.event_create,
    events.event_list,
    events.event_archive,
    versions.event_versions,
    versions.event_cutover,
    versions.event_prune,
)
_group(
    "attendee",
    "Add or delete attendees.",
    attendees.attendee_add,
    attendees.attendee_import,
    attendees.attendee_list,
    attendees.attendee_consent,
    attendees.attendee_delete,
)
_group("photo", "Delete photos.", photos.photo_delete)
_group(
    "privacy",
    "Keep Dagster's own storage free of personal data (its event log cannot be erased).",
    privacy.privacy_scrub,
)
_group(
    "thumbnails",
    "The read-only thumbnail route the Dagster UI links to on the embedded default.",
    privacy.thumbnails_serve,
)
_group(
    "match",
    'Candidate matches ("is this you?") and re-matching under the current matching policy.',
    matching.match_candidates,
    matching.match_confirm,
    matching.match_refuse,
    matching.match_rematch,
)
for _command in (
    photos.upload,
    photos.photos,
    photos.matches,
    processing.process,
    processing.rerun,
    processing.demo,
    versions.models,
    versions.reembed,
    reports.report,
    reports.clusters,
):
    main.add_command(_command)
