"""A stand-in array task for the backend tests: prints its task index, sleeps, fails when told to.

    python sleeper.py --seconds 2 --fail-task 1 --task-index 0
"""

import argparse
import os
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("--seconds", type=float, default=0.0)
parser.add_argument("--fail-task", type=int, action="append", default=[])
parser.add_argument("--task-index", type=int, required=True)
arguments = parser.parse_args()
print(f"task {arguments.task_index} starts, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}", flush=True)
time.sleep(arguments.seconds)
if arguments.task_index in arguments.fail_task:
    print(f"task {arguments.task_index} fails as told", file=sys.stderr)
    sys.exit(3)
print(f"task {arguments.task_index} done", flush=True)
