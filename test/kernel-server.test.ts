/**
 * kernel/server/jupyter-server.ts with Debian's classic Notebook 6 (the
 * fallback when JupyterLab cannot be installed): it starts on 127.0.0.1 with
 * a token, refuses requests without it, lists the llama-ts kernelspec, and
 * stops cleanly. (JupyterLab is covered end to end by kernel-browser.test.ts.)
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { installKernelSpec } from "../kernel/kernelspec.js";
import { startJupyter, type JupyterServer } from "../kernel/server/jupyter-server.js";
import { ROOT } from "./kernel/harness.js";

describe("Jupyter server start-up (Notebook 6 fallback)", () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "llama-ts-nb6-"));
  let server: JupyterServer | undefined;
  afterAll(async () => {
    await server?.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it("serves the notebooks folder with a token and our kernelspec", async () => {
    installKernelSpec(ROOT, { kind: "prefix", prefix: tmp });
    server = await startJupyter({
      root: ROOT,
      notebookDir: path.join(ROOT, "notebooks"),
      flavor: "notebook",
      env: {
        JUPYTER_PATH: path.join(tmp, "share", "jupyter"),
        JUPYTER_CONFIG_DIR: path.join(tmp, "config"),
        JUPYTER_RUNTIME_DIR: path.join(tmp, "runtime"),
      },
    });
    expect(server.flavor).toBe("notebook");
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/tree\?token=[0-9a-f]{48}$/);
    const denied = await fetch(`${server.baseUrl}/api/kernelspecs`);
    expect(denied.status).toBe(403);
    const specs = (await (await fetch(`${server.baseUrl}/api/kernelspecs?token=${server.token}`)).json()) as { kernelspecs: Record<string, { spec: { display_name: string } }> };
    expect(specs.kernelspecs["llama-ts"]?.spec.display_name).toBe("LLaMA (TypeScript)");
    const contents = (await (await fetch(`${server.baseUrl}/api/contents?token=${server.token}`)).json()) as { content: { name: string }[] };
    expect(contents.content.map((c) => c.name)).toContain("01-quickstart.ipynb");
    const proc = server.process;
    await server.stop();
    expect(proc.exitCode !== null || proc.signalCode !== null).toBe(true);
  }, 120_000);
});
