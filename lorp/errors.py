"""The one base class of the project's refusals: a stage prints such an error as one line and exits 1."""


class LorpError(Exception):
    """Bad input or state the user can fix; the message says what is wrong and how to fix it."""
