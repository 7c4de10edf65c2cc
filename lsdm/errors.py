"""The two errors a user can fix: both end a stage with a clear message instead of a traceback."""


class ParamsError(ValueError):
    """Bad parameters; the message names each offending key, its value and what is allowed."""


class DataError(ValueError):
    """Bad input data; the message names the file or item and what is wrong with it."""
