"""The ``modalab`` command line interface."""
