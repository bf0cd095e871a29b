"""The one base class of the project's refusals: a stage prints such an error as one line and exits 1."""


class LorpError(Exception):
    """Bad input or state the user can fix; the message says what is wrong and how to fix it."""


class ParamsError(LorpError, ValueError):
    """A params.yaml value (or the command-line flag standing for it) that cannot work; the message says what
    to change."""
