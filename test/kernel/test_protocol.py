"""Protocol behaviour the standard suite does not cover, driven through
jupyter_client (the reference client) against the llama-ts kernel:
interrupts (message and signal; busy loop, await, loop of awaits), restart,
comms, stdin, error cells in bulk, stop_on_error, ESM imports, tracebacks,
and a shutdown that finalizes a notebook's WebGPU objects before the exit.
Run from test/kernel-protocol.test.ts."""
import json
import os
import signal
import tempfile
import time
import unittest
import uuid
from queue import Empty

from jupyter_client.manager import start_new_kernel

TIMEOUT = 30

# Type-checking this takes about 3 s (recursive tuple types near TypeScript's depth limit).
SLOW_TO_CHECK = (
    "type Tuple<N extends number, A extends unknown[] = []> = A['length'] extends N ? A : Tuple<N, [...A, 0]>;\n"
    "type Slow = [" + ", ".join(f"Tuple<{900 + i}>" for i in range(8)) + "];\n"
    "const slowToCheck: Slow[] = [];\n"
)


def shell_reply(kc, msg_id, timeout=TIMEOUT):
    """The shell reply to one request (other replies are skipped)."""
    deadline = time.time() + timeout
    while True:
        msg = kc.get_shell_msg(timeout=max(0.1, deadline - time.time()))
        if msg["parent_header"].get("msg_id") == msg_id:
            return msg


class KernelCase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.km, cls.kc = start_new_kernel(kernel_name="llama-ts", startup_timeout=90)

    @classmethod
    def tearDownClass(cls):
        cls.kc.stop_channels()
        cls.km.shutdown_kernel(now=True)

    def collect(self, msg_id, timeout=TIMEOUT):
        """IOPub messages for one request, up to its idle status."""
        out = []
        deadline = time.time() + timeout
        while True:
            msg = self.kc.get_iopub_msg(timeout=max(0.1, deadline - time.time()))
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "status":
                if msg["content"]["execution_state"] == "idle":
                    return out
                continue
            if msg["msg_type"] == "execute_input":
                continue
            out.append(msg)

    def reply_for(self, msg_id, timeout=TIMEOUT):
        return shell_reply(self.kc, msg_id, timeout)

    def execute(self, code, timeout=TIMEOUT, **kw):
        msg_id = self.kc.execute(code, **kw)
        reply = self.reply_for(msg_id, timeout)
        outputs = self.collect(msg_id, timeout)
        return reply["content"], outputs

    def value(self, code):
        reply, outputs = self.execute(code)
        self.assertEqual(reply["status"], "ok", outputs)
        results = [m for m in outputs if m["msg_type"] == "execute_result"]
        self.assertEqual(len(results), 1, outputs)
        return results[0]["content"]["data"]["text/plain"]


class InterruptTests(KernelCase):
    def setUp(self):
        self.assertEqual(self.value("0"), "0")  # the kernel has compiled a cell: interrupts hit running code

    def interrupt_after(self, code, delay, how):
        msg_id = self.kc.execute(code)
        time.sleep(delay)
        if how == "message":
            self.km.interrupt_kernel()  # interrupt_mode "message": interrupt_request on control
        else:
            os.kill(self.km.provisioner.process.pid, signal.SIGINT)
        reply = self.reply_for(msg_id, timeout=20)  # without a working interrupt: never
        outputs = self.collect(msg_id)
        self.assertEqual(reply["content"]["status"], "error")
        self.assertEqual(reply["content"]["ename"], "KeyboardInterrupt")
        self.assertEqual([m["msg_type"] for m in outputs], ["error"])
        self.assertEqual(self.value("1 + 1"), "2")  # still alive, state intact

    def test_busy_loop_message_mode(self):
        self.interrupt_after("while (true) {}", 1.0, "message")

    def test_busy_loop_signal(self):
        self.interrupt_after("let spins = 0;\nfor (;;) { spins++; }", 1.0, "signal")

    def test_pending_await(self):
        self.interrupt_after("await new Promise((r) => setTimeout(r, 600_000));", 1.0, "message")

    def test_interrupt_while_compiling(self):
        # The cell takes seconds to type-check and the interrupt lands meanwhile, so the signal reaches the
        # kernel before the run that breakOnSigint guards begins: the cell must still stop, in either mode.
        for how in ("message", "signal"):
            with self.subTest(how=how):
                self.interrupt_after(SLOW_TO_CHECK + "while (true) {}", 0.5, how)
        # It never ran, so its names are not declared for later cells either.
        reply, _ = self.execute("slowToCheck")
        self.assertEqual((reply["status"], reply["ename"]), ("error", "CompileError"))
        self.assertIn("Cannot find name 'slowToCheck'", reply["evalue"])

    def test_loop_of_awaits_stops(self):
        code = "let ticks = 0;\nwhile (true) {\n  await new Promise((r) => setTimeout(r, 5));\n  ticks++;\n}"
        self.interrupt_after(code, 1.0, "message")
        first = int(self.value("ticks"))
        time.sleep(0.3)
        self.assertEqual(int(self.value("ticks")), first, "the interrupted loop kept running")
        self.assertGreater(first, 0)

    def test_interrupt_when_idle_is_harmless(self):
        self.km.interrupt_kernel()
        time.sleep(0.3)
        self.assertEqual(self.value("'idle ok'"), "'idle ok'")


class ErrorTests(KernelCase):
    def test_hundred_error_cells_in_a_row(self):
        for i in range(100):
            code = f'throw new RangeError("bad {i}")' if i % 2 == 0 else f"const wrong{i}: number = 'text'"
            reply, outputs = self.execute(code)
            self.assertEqual(reply["status"], "error", i)
            self.assertEqual([m["msg_type"] for m in outputs], ["error"], i)
            self.assertEqual(outputs[0]["content"]["ename"], "RangeError" if i % 2 == 0 else "CompileError")
        self.assertEqual(self.value("'still alive'"), "'still alive'")

    def test_queued_cells_after_error_run_without_stop_on_error(self):
        ids = [self.kc.execute(f'throw new Error("queued {i}")', stop_on_error=False) for i in range(20)]
        ok_id = self.kc.execute("'after the errors'", stop_on_error=False)
        statuses = [self.reply_for(i)["content"]["status"] for i in ids]
        self.assertEqual(statuses, ["error"] * 20)
        self.assertEqual(self.reply_for(ok_id)["content"]["status"], "ok")

    def test_stop_on_error_aborts_only_what_was_already_queued(self):
        ids = [self.kc.execute("throw new Error('first')")] + [self.kc.execute(f"{i}") for i in range(5)]
        replies = [self.reply_for(i)["content"]["status"] for i in ids]
        self.assertEqual(replies[0], "error")
        self.assertTrue(all(s in ("aborted", "ok") for s in replies[1:]), replies)
        # A cell sent after the failure was reported runs normally.
        self.assertEqual(self.value("'runs'"), "'runs'")

    def test_traceback_points_at_cell_lines(self):
        code = "const a = 1;\nfunction inner(n: number) {\n  if (n > 0) throw new TypeError('deep ' + n);\n}\ninner(a);"
        reply, outputs = self.execute(code)
        self.assertEqual(reply["ename"], "TypeError")
        self.assertEqual(reply["evalue"], "deep 1")
        tb = "\n".join(outputs[0]["content"]["traceback"])
        self.assertIn("line 3, in inner", tb)
        self.assertIn("throw new TypeError('deep ' + n)", tb)
        self.assertIn("line 5", tb)
        self.assertNotIn("dist/kernel", tb)

    def test_uncaught_background_error_does_not_kill_kernel(self):
        reply, _ = self.execute("setTimeout(() => { throw new Error('late'); }, 10); Promise.reject(new Error('floating')); 1")
        self.assertEqual(reply["status"], "ok")
        time.sleep(0.3)
        self.assertEqual(self.value("'alive'"), "'alive'")


class FeatureTests(KernelCase):
    def test_comm_round_trip(self):
        reply, _ = self.execute(
            "comms.registerTarget('echo', (comm, data) => {\n"
            "  comm.send({ opened: data });\n"
            "  comm.onMsg((d) => comm.send({ echo: d }));\n"
            "});"
        )
        self.assertEqual(reply["status"], "ok")
        comm_id = uuid.uuid4().hex
        session = self.kc.session

        def send(msg_type, content):
            msg = session.msg(msg_type, content)
            self.kc.shell_channel.send(msg)
            return msg["header"]["msg_id"]

        def comm_msgs(msg_id):
            return [m for m in self.collect(msg_id) if m["msg_type"] in ("comm_msg", "comm_close")]

        opened = comm_msgs(send("comm_open", {"comm_id": comm_id, "target_name": "echo", "data": {"hello": 1}}))
        self.assertEqual(opened[0]["content"]["data"], {"opened": {"hello": 1}})
        echoed = comm_msgs(send("comm_msg", {"comm_id": comm_id, "data": {"x": [1, 2]}}))
        self.assertEqual(echoed[0]["content"], {"comm_id": comm_id, "data": {"echo": {"x": [1, 2]}}})

        self.kc.comm_info(target_name="echo")
        info = self.kc.get_shell_msg(timeout=TIMEOUT)
        self.assertEqual(info["header"]["msg_type"], "comm_info_reply")
        self.assertEqual(info["content"]["comms"], {comm_id: {"target_name": "echo"}})
        send("comm_close", {"comm_id": comm_id, "data": {}})
        self.kc.comm_info()
        info = self.kc.get_shell_msg(timeout=TIMEOUT)
        self.assertEqual(info["content"]["comms"], {})

        # Opening a comm on a target nobody registered is answered with comm_close.
        closed = comm_msgs(send("comm_open", {"comm_id": uuid.uuid4().hex, "target_name": "nobody", "data": {}}))
        self.assertEqual(closed[0]["msg_type"], "comm_close")

    def test_kernel_opened_comm(self):
        msg_id = self.kc.execute("const c = comms.open('llama-ts.test', { n: 3 }); c.send({ step: 1 }); c.close();")
        kinds = [(m["msg_type"], m["content"].get("target_name")) for m in self.collect(msg_id)]
        self.assertEqual(kinds, [("comm_open", "llama-ts.test"), ("comm_msg", None), ("comm_close", None)])

    def test_stdin_input_request(self):
        msg_id = self.kc.execute("const answer = await input('name? ');\nanswer.toUpperCase()", allow_stdin=True)
        req = self.kc.get_stdin_msg(timeout=TIMEOUT)
        self.assertEqual(req["header"]["msg_type"], "input_request")
        self.assertEqual(req["content"]["prompt"], "name? ")
        self.kc.input("llama")
        self.assertEqual(self.reply_for(msg_id)["content"]["status"], "ok")
        results = [m for m in self.collect(msg_id) if m["msg_type"] == "execute_result"]
        self.assertEqual(results[0]["content"]["data"]["text/plain"], "'LLAMA'")

    def test_input_without_stdin_is_an_error(self):
        reply, outputs = self.execute("await input('x')", allow_stdin=False)
        self.assertEqual(reply["status"], "error")
        self.assertIn("stdin", reply["evalue"])

    def test_esm_only_packages_and_llama_ts(self):
        # estree-walker exports only an "import" condition: require() cannot load it.
        self.assertEqual(self.value('import { walk } from "estree-walker";\ntypeof walk'), "'function'")
        self.assertEqual(self.value('import chalk from "chalk";\ntypeof chalk.red'), "'function'")
        self.assertEqual(self.value('const m = await import("estree-walker");\ntypeof m.asyncWalk'), "'function'")
        self.assertEqual(self.value('import { LlamaError } from "llama-ts";\ntypeof LlamaError'), "'function'")
        # "llama-ts" is this checkout's build, the same module instance as a direct import of dist/lib.
        same = self.value('import * as L from "llama-ts";\nconst direct = await import("../dist/lib/index.js");\nL.LlamaError === direct.LlamaError')
        self.assertEqual(same, "true")
        # require("llama-ts") in a cell loads the same ES modules (no CommonJS copy of the classes).
        same = self.value('const R = require("llama-ts");\nconst direct = await import("../dist/lib/index.js");\nR.Tensor === direct.Tensor && typeof R.LlamaForCausalLM')
        self.assertEqual(same, "'function'")

    def test_local_typescript_module(self):
        same = self.value('import { FormatError } from "../lib/errors.js";\nnew FormatError("f.bin", "bad").message.includes("f.bin")')
        self.assertEqual(same, "true")

    def test_cross_cell_state_and_types(self):
        self.execute("interface Point { x: number; y: number }\nlet pts: Point[] = [];\nfunction add(p: Point) { pts.push(p); return pts.length }")
        self.assertEqual(self.value("add({ x: 1, y: 2 })"), "1")
        self.assertEqual(self.value("add({ x: 3, y: 4 }); pts.map((p) => p.x + p.y)"), "[ 3, 7 ]")
        reply, outputs = self.execute("add({ x: 'no' })")
        self.assertEqual(reply["ename"], "CompileError")
        self.assertEqual(self.value("const pts = 'redeclared'; pts"), "'redeclared'")
        # Redefining a class as a plain value leaves an earlier declaration (`k: K`) broken;
        # that must not block this or later cells.
        self.execute("class K { n = 1 }\nconst k = new K();")
        self.assertEqual(self.value("const K = 5; K + 1"), "6")
        self.assertEqual(self.value("'next cell'"), "'next cell'")

    def test_rich_outputs(self):
        reply, outputs = self.execute("display.plotly({ data: [{ y: [1, 2, 3], type: 'bar' }], layout: { title: { text: 'T' } } })")
        data = outputs[0]["content"]["data"]
        self.assertEqual(data["application/vnd.plotly.v1+json"]["data"][0]["y"], [1, 2, 3])
        html = data["text/html"]
        # The first figure of the session carries plotly.js inline; nothing is fetched from elsewhere.
        self.assertTrue("Plotly.newPlot" in html and "plotly.js v" in html, "no inline plotly.js in the first figure")
        self.assertFalse("<script src" in html, "the HTML fallback loads a script from a URL")
        reply, outputs = self.execute("display.plotly({ data: [{ y: [4], type: 'bar' }] })")
        second = outputs[0]["content"]["data"]["text/html"]
        self.assertTrue("Plotly.newPlot" in second and "plotly.js v" not in second and len(second) < 5000)
        reply, outputs = self.execute("const bar = display.progress('steps', 4);\nfor (let i = 1; i <= 4; i++) bar(i);\nbar.close();")
        kinds = [m["msg_type"] for m in outputs]
        self.assertEqual(kinds[0], "display_data")
        self.assertIn("update_display_data", kinds)
        last = [m for m in outputs if m["msg_type"] == "update_display_data"][-1]
        self.assertIn("4/4", last["content"]["data"]["text/plain"])
        reply, outputs = self.execute("const h = display.html('<b>1</b>');\nh.update('<b>2</b>');")
        self.assertEqual([m["msg_type"] for m in outputs], ["display_data", "update_display_data"])
        self.assertEqual(outputs[0]["content"]["transient"]["display_id"], outputs[1]["content"]["transient"]["display_id"])

    def test_unicode_cursor_positions(self):
        code = "const s = '😀😀'; Math.ma"
        self.kc.complete(code, len(code))  # cursor in code points
        reply = self.kc.get_shell_msg(timeout=TIMEOUT)["content"]
        self.assertEqual(reply["matches"], ["max"])
        self.assertEqual(reply["cursor_start"], len(code) - 2)
        self.assertEqual(reply["cursor_end"], len(code))


class RestartTests(KernelCase):
    def test_restart_clears_state_and_keeps_history(self):
        self.assertEqual(self.value("const kept = 41; kept + 1"), "42")
        self.kc.history(hist_access_type="tail", n=1)
        before = self.kc.get_shell_msg(timeout=TIMEOUT)["content"]["history"]
        self.km.restart_kernel(now=False)
        self.kc.wait_for_ready(timeout=90)
        reply, outputs = self.execute("kept")
        self.assertEqual(reply["ename"], "CompileError")
        self.assertEqual(reply["execution_count"], 1)
        self.kc.history(hist_access_type="search", pattern="const kept*", n=5)
        hist = self.kc.get_shell_msg(timeout=TIMEOUT)["content"]["history"]
        self.assertEqual(hist[-1][2], "const kept = 41; kept + 1")
        self.assertEqual(hist[-1][0], before[-1][0])  # the earlier session, persisted
        self.kc.history(hist_access_type="range", session=-1, start=1, stop=2, output=True)
        prev = self.kc.get_shell_msg(timeout=TIMEOUT)["content"]["history"]
        self.assertEqual(prev[0][2], ["const kept = 41; kept + 1", "42"])
        self.assertEqual(self.value("'after restart'"), "'after restart'")


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# A notebook that keeps a model on WebGPU and, at the process's exit event, writes how many of
# the Dawn objects its backend made are still alive (those would be finalized during node's
# exit, or never: the kernel leaves by process.exit).
WEBGPU_CELL = """
import * as fs from "node:fs";
import { LlamaForCausalLM } from "llama-ts";
const onGpu = await LlamaForCausalLM.fromPretrained(%s, { device: "webgpu" });
const out = await onGpu.forward({ inputIds: [[1, 200, 300]] });
const dawn = (onGpu.backend as unknown as { runtime: { ctx: { objects: { count: number } } } }).runtime.ctx.objects;
process.on("exit", () => fs.writeFileSync(%s, `${dawn.count}`));
if (out.logits.shape[1] !== 3 || dawn.count < 10) throw new Error(`expected logits for 3 positions and Dawn objects, got ${out.logits.shape} and ${dawn.count}`);
"""


class ShutdownTests(unittest.TestCase):
    def test_shutdown_finalizes_a_notebooks_webgpu_objects(self):
        km, kc = start_new_kernel(kernel_name="llama-ts", startup_timeout=90)
        report = os.path.join(tempfile.mkdtemp(), "dawn-objects-at-exit")
        try:
            model = os.path.join(ROOT, "models", "tiny-stories")
            msg_id = kc.execute(WEBGPU_CELL % (json.dumps(model), json.dumps(report)))
            reply = shell_reply(kc, msg_id, timeout=120)
            self.assertEqual(reply["content"]["status"], "ok", reply["content"])
        finally:
            kc.stop_channels()
            km.shutdown_kernel(now=False)  # a shutdown_request, then waiting for the process to end
        with open(report) as f:
            self.assertEqual(f.read(), "0")


if __name__ == "__main__":
    unittest.main()
