"""``python -m dispatcher.processes RECORDS_FD STATUS_FD``: one worker (started by the
coordinator, never by hand)."""

import sys

from dispatcher.processes.worker import worker_main

worker_main(int(sys.argv[1]), int(sys.argv[2]))
