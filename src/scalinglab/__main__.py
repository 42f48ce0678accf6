"""``python -m scalinglab ...`` (and ``torchrun ... -m scalinglab train ...``) runs the CLI."""

from scalinglab.cli.app import main

if __name__ == "__main__":
    main()
