"""One error hierarchy for the whole project.

Third-party errors (botocore, PIL, dlib, SQLAlchemy) are translated into these at the module that
talks to the third party, so callers only ever decide between "retry later" and "this input is bad".
"""


class PicsarisError(Exception):
    """Base class of every error this project raises on purpose."""


class RetryableError(PicsarisError):
    """Retry later: throttling, timeouts, connection loss. The input itself is fine."""


class BadInputError(PicsarisError):
    """This input is bad (corrupt image, hash mismatch, unknown id); retrying will not help."""


class NotFoundError(PicsarisError):
    """A thing that should exist does not."""


class ConfigurationError(PicsarisError):
    """The deployment is misconfigured (missing bucket, bad credentials, unknown model)."""


class UnreadableStoreError(ConfigurationError):
    """A store we keep state in (the application database, Dagster's storage or home) is damaged or
    unreadable: an operator must restore or move it aside; retrying will not help."""
