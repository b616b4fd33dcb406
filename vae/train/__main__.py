"""`python -m vae.train` and `torchrun -m vae.train`: the CLI of vae/train/cli.py."""

import sys

from vae.train.cli import main

if __name__ == "__main__":
    sys.exit(main())
