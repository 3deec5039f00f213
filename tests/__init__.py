"""The test suite.

Bytecode is cached here as Python caches it by default, also where the environment
turns that off (``PYTHONDONTWRITEBYTECODE``): the suite starts some 400 Python processes
(the CLI, fleet workers, test servers), and each would otherwise compile the package
from source again, about 0.4 s of CPU apiece. This package is imported before any
conftest or test module, and the processes the tests start inherit the environment.
"""

import os
import sys

sys.dont_write_bytecode = False
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
