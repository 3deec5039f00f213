"""``python -m dispatcher.processes RECORDS_FD STATUS_FD``: one worker (started by the
coordinator, never by hand)."""

import os
import sys

from dispatcher.cli.common import setup_logging
from dispatcher.processes.worker import worker_main

if os.environ.get("DISPATCHER_LOG_LEVEL"):  # the coordinator's --log-level
    setup_logging(os.environ["DISPATCHER_LOG_LEVEL"])

worker_main(int(sys.argv[1]), int(sys.argv[2]))
