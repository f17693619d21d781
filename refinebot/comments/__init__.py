"""What refinebot says on tickets and how teams answer: ``compose`` (findings -> Document) and ``commands``.

Pure modules: no I/O library, no connector, no store.
"""
