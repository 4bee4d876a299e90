"""The standard protocol suite (jupyter_kernel_test) against the llama-ts kernel,
with every attribute the suite supports filled in. Run from test/kernel-jkt.test.ts."""
import unittest

import jupyter_kernel_test as jkt


class LlamaTsKernelTests(jkt.KernelTests):
    kernel_name = "llama-ts"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # The suite allows 15 s per reply. The kernel's first cell parses the TypeScript
        # libraries (seconds on a busy CI machine), so run one cell first, untimed by the suite.
        msg_id = cls.kc.execute("0")
        while cls.kc.get_shell_msg(timeout=180)["parent_header"].get("msg_id") != msg_id:
            pass
    language_name = "typescript"
    file_extension = ".ts"

    code_hello_world = 'console.log("hello, world")'
    code_stderr = 'console.error("something went wrong")'

    # matches are the members/names starting with what was typed, as IPython does
    completion_samples = [
        {"text": "Math.ma", "matches": {"max"}},
        {"text": "Math.a", "matches": {"abs", "acos", "acosh", "asin", "asinh", "atan", "atan2", "atanh"}},
        {"text": "[1, 2].fla", "matches": {"flat", "flatMap"}},
        {"text": "const zebra1 = 1, zebra2 = 2;\nzeb", "matches": {"zebra1", "zebra2"}},
    ]

    complete_code_samples = ["1 + 1", "const x = 1;", "function f() { return 1 }", "for (const i of [1]) console.log(i)"]
    incomplete_code_samples = ["function f() {", "const a = [1, 2,", "if (true) {\n  console.log(1)", "const s = `abc", "f(1, 2"]
    invalid_code_samples = ["const = 5", "1 +* 2", "x = )", "let 3x = 1"]

    code_generate_error = 'throw new Error("boom")'

    code_execute_result = [
        {"code": "6 * 7", "result": "42"},
        {"code": '"a" + "b"', "result": "'ab'"},
        {"code": "[1, 2, 3].map(x => x * 2)", "result": "[ 2, 4, 6 ]"},
        {"code": "({ a: 1, b: 'x' })", "result": "{ a: 1, b: 'x' }"},
        {"code": "({ _repr_mimebundle_: () => ({ 'text/html': '<b>rich</b>' }) })", "mime": "text/html", "result": "<b>rich</b>"},
    ]

    code_display_data = [
        {"code": 'display.html("<b>hi</b>")', "mime": "text/html"},
        {"code": 'display.markdown("# Title")', "mime": "text/markdown"},
        {"code": "display.svg('<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"4\" height=\"4\"></svg>')", "mime": "image/svg+xml"},
        {"code": "display.png(new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10]))", "mime": "image/png"},
        {"code": "display.json({ a: [1, 2] })", "mime": "application/json"},
        {"code": "display.plotly({ data: [{ x: [1, 2], y: [3, 4], type: 'scatter' }] })", "mime": "application/vnd.plotly.v1+json"},
        {"code": "display.mime({ 'text/latex': '$x^2$' })", "mime": "text/latex"},
        {"code": "display({ toMimeBundle: () => ({ 'text/html': '<i>table</i>' }) })", "mime": "text/html"},
    ]

    # IPython searches history with SQLite's GLOB: "[*]" is a literal star (ipykernel passes this pattern)
    code_history_pattern = "6 [*] 7"
    supported_history_operations = ("tail", "range", "search")

    code_inspect_sample = "Math.max"

    code_clear_output = "clearOutput()"

    def test_kernel_info_details(self):
        """kernel_info_reply carries status, protocol 5.3, the language and help links."""
        self.flush_channels()
        self.kc.kernel_info()
        reply = self.kc.get_shell_msg(timeout=jkt.TIMEOUT)
        c = reply["content"]
        self.assertEqual(c["status"], "ok")
        self.assertEqual(c["protocol_version"], "5.3")
        self.assertEqual(c["implementation"], "llama-ts")
        self.assertEqual(c["language_info"]["mimetype"], "text/typescript")
        self.assertTrue(c["banner"])
        self.assertGreaterEqual(len(c["help_links"]), 1)

    def test_execution_count(self):
        """execution_count increases by one per stored execution and appears on execute_input/result."""
        self.flush_channels()
        r1, _ = self.execute_helper("1")
        r2, out = self.execute_helper("2")
        self.assertEqual(r2["content"]["execution_count"], r1["content"]["execution_count"] + 1)
        results = [m for m in out if m["msg_type"] == "execute_result"]
        self.assertEqual(results[0]["content"]["execution_count"], r2["content"]["execution_count"])
        r3, out3 = self.execute_helper("3", silent=True, store_history=False)
        self.assertEqual(r3["content"]["execution_count"], r2["content"]["execution_count"])
        self.assertEqual([m for m in out3 if m["msg_type"] == "execute_result"], [])


if __name__ == "__main__":
    unittest.main()
