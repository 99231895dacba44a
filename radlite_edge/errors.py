"""The one exception type for user mistakes.

A ``UserError`` ends a command with one clear line and exit code 2 (DESIGN.md,
Conventions). Its message names the file or field at fault and, where there is one,
the fix. Anything else that escapes is a bug in RadLite Edge and keeps its traceback.
"""


class UserError(Exception):
    """A mistake in what the user gave us: a path, a file's contents, an option."""

    exit_code = 2
