"""``python -m isafe_helpers``: the same as the ``isafe`` command (:mod:`isafe_helpers.run.cli`)."""

import sys

from isafe_helpers.run.cli import main

if __name__ == "__main__":
    sys.exit(main())
