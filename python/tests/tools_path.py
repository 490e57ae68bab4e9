"""Makes python/tools importable from the tests."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import dump_reference  # noqa: E402,F401
import make_random_checkpoint  # noqa: E402,F401
