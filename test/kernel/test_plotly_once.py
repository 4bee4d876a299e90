"""plotly.js (~4.8 MB) goes into a kernel session's outputs once, whichever
path shows figures: the kernel's `display.plotly` HTML fallback and the
library's `Figure` (its `_repr_mimebundle_` HTML). Each test is a fresh
kernel session. Run from test/kernel-plotly.test.ts."""
import time
import unittest

from jupyter_client.manager import start_new_kernel

TIMEOUT = 60
# The banner at the top of plotly.min.js: one per inlined copy of the library.
MARKER = "* plotly.js v"

KERNEL_FIGURE = "display.plotly({ data: [{ x: [1, 2], y: [3, 4], type: 'scatter' }] })"
LIB_FIGURE = 'new Figure({ data: [{ type: "bar", y: [1, 2] }], layout: { title: { text: "lib" } } })'


class PlotlyOnce(unittest.TestCase):
    def setUp(self):
        self.km, self.kc = start_new_kernel(kernel_name="llama-ts", startup_timeout=90)
        self.assertEqual(self.run_cell('import { Figure } from "llama-ts"; 0')[0]["status"], "ok")

    def tearDown(self):
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)

    def run_cell(self, code):
        """(execute_reply content, HTML of every display_data/execute_result it produced)."""
        msg_id = self.kc.execute(code)
        deadline = time.time() + TIMEOUT
        while True:
            reply = self.kc.get_shell_msg(timeout=max(0.1, deadline - time.time()))
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        html = []
        while True:
            msg = self.kc.get_iopub_msg(timeout=max(0.1, deadline - time.time()))
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                return reply["content"], html
            if msg["msg_type"] in ("display_data", "execute_result", "update_display_data"):
                html.append(msg["content"]["data"].get("text/html", ""))

    def figures(self, cells):
        """HTML of each cell's one figure output, in order."""
        out = []
        for code in cells:
            reply, html = self.run_cell(code)
            self.assertEqual(reply["status"], "ok", reply)
            self.assertEqual(len(html), 1, code)
            self.assertIn("newPlot", html[0], code)  # the fallback draws the figure
            out.append(html[0])
        return out

    def test_kernel_path_first(self):
        html = self.figures([KERNEL_FIGURE, LIB_FIGURE, KERNEL_FIGURE, LIB_FIGURE])
        self.assertEqual([h.count(MARKER) for h in html], [1, 0, 0, 0])

    def test_library_path_first(self):
        html = self.figures([LIB_FIGURE, KERNEL_FIGURE, LIB_FIGURE, KERNEL_FIGURE])
        self.assertEqual([h.count(MARKER) for h in html], [1, 0, 0, 0])


if __name__ == "__main__":
    unittest.main()
