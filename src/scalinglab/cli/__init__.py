"""The ``scalinglab`` command line: thin typer commands over the library."""
