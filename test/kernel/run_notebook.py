"""Executes one notebook headless on the llama-ts kernel through nbclient (a real
Jupyter client) and prints a JSON report on stdout: kernel start → ready → first
result times, each code cell's time and status. Exit status 1 when any cell
fails: an error output, a reply that is not "ok" (an "aborted" = cancelled cell
counts as a failure), a cell left unexecuted, or a failed assertion (which is
an error output). Usage: run_notebook.py NOTEBOOK [OUT_NOTEBOOK]"""
import json
import os
import sys
import time

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

CELL_TIMEOUT = int(os.environ.get("NOTEBOOK_CELL_TIMEOUT", "120"))


def main():
    path = os.path.abspath(sys.argv[1])
    out_path = sys.argv[2] if len(sys.argv) > 2 else None
    nb = nbformat.read(path, as_version=4)
    report = {"notebook": os.path.basename(path), "cells": [], "ok": False}
    replies = {}

    def on_executed(cell, cell_index, execute_reply):
        replies[cell_index] = execute_reply["content"] if execute_reply else None

    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT,
        kernel_name="llama-ts",
        resources={"metadata": {"path": os.path.dirname(path)}},
        allow_errors=False,
        on_cell_executed=on_executed,
    )
    t0 = time.monotonic()
    failure = None
    try:
        with client.setup_kernel():
            report["kernel_ready_s"] = round(time.monotonic() - t0, 3)
            for index, cell in enumerate(nb.cells):
                if cell.cell_type != "code":
                    continue
                start = time.monotonic()
                entry = {"index": index, "first_line": cell.source.split("\n")[0][:60]}
                report["cells"].append(entry)
                try:
                    client.execute_cell(cell, index)
                finally:
                    entry["seconds"] = round(time.monotonic() - start, 3)
                    reply = replies.get(index)
                    entry["status"] = reply["status"] if reply else "no reply"
                    entry["outputs"] = [o.get("output_type") for o in cell.get("outputs", [])]
                    if "first_result_s" not in report:
                        report["first_result_s"] = round(time.monotonic() - t0, 3)
                errors = [o for o in cell.outputs if o.get("output_type") == "error"]
                if entry["status"] != "ok":
                    failure = f"cell {index}: execute_reply status {entry['status']!r} (cancelled or failed)"
                elif errors:
                    failure = f"cell {index}: error output {errors[0].get('ename')}: {errors[0].get('evalue')}"
                elif cell.get("execution_count") is None:
                    failure = f"cell {index}: was not executed"
                if failure:
                    break
    except CellExecutionError as err:
        failure = f"cell failed: {str(err)[-3000:]}"
    except (CellTimeoutError, DeadKernelError) as err:
        failure = f"{type(err).__name__}: {err}"
    report["total_s"] = round(time.monotonic() - t0, 3)
    report["ok"] = failure is None
    if failure:
        report["failure"] = failure
    if out_path:
        nbformat.write(nb, out_path)
    print(json.dumps(report))
    return 0 if failure is None else 1


if __name__ == "__main__":
    sys.exit(main())
