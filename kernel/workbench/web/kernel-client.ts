/**
 * The page's one connection to a `llama-ts` kernel, through @jupyterlab/services
 * against the Jupyter server (proxied same-origin under /api/ by the workbench
 * server). Every panel action is `run(code)`: a kernel execution of library
 * code whose IOPub messages stream back as callbacks.
 */
import { KernelManager, ServerConnection, type Kernel, type KernelMessage } from "@jupyterlab/services";

/** One output of a cell, as the page handles it. */
export type Output =
  | { kind: "stream"; name: "stdout" | "stderr"; text: string }
  | { kind: "display"; data: Record<string, unknown>; displayId?: string; update: boolean }
  | { kind: "result"; data: Record<string, unknown> }
  | { kind: "clear"; wait: boolean };

/** A failed cell: the kernel's ename/evalue, readable as one message. */
export class CellError extends Error {
  constructor(readonly ename: string, readonly evalue: string, readonly traceback: string[]) {
    super(`${ename}: ${evalue}`);
  }
}

/** The kernel died or was restarted while a cell ran. */
export class KernelLostError extends Error {}

/** The value of a cell's last `display.json(...)` (or JSON execute_result), if any. */
export function lastJsonResult<T>(outputs: readonly Output[]): T | undefined {
  for (let i = outputs.length - 1; i >= 0; i--) {
    const o = outputs[i]!;
    if ((o.kind === "display" || o.kind === "result") && "application/json" in o.data) return o.data["application/json"] as T;
  }
  return undefined;
}

export type KernelState = "starting" | "idle" | "busy" | "restarting" | "dead" | "disconnected";

export interface RunOptions {
  onOutput?: (out: Output) => void;
}

export class KernelClient {
  private kernel: Kernel.IKernelConnection | undefined;
  private readonly manager: KernelManager;
  private readonly listeners = new Set<(s: KernelState) => void>();
  state: KernelState = "starting";

  constructor() {
    const serverSettings = ServerConnection.makeSettings({
      baseUrl: `${location.origin}/`,
      wsUrl: `${location.origin.replace(/^http/, "ws")}/`,
    });
    this.manager = new KernelManager({ serverSettings });
  }

  onState(fn: (s: KernelState) => void): void {
    this.listeners.add(fn);
  }

  private setState(s: KernelState): void {
    this.state = s;
    for (const fn of this.listeners) fn(s);
  }

  async start(): Promise<void> {
    this.setState("starting");
    await this.manager.ready;
    const kernel = await this.manager.startNew({ name: "llama-ts" });
    this.attach(kernel);
    await kernel.info;
  }

  private attach(kernel: Kernel.IKernelConnection): void {
    this.kernel = kernel;
    kernel.statusChanged.connect((_k, status) => {
      if (status === "idle" || status === "busy" || status === "restarting" || status === "dead") this.setState(status);
      else if (status === "autorestarting") this.setState("restarting");
      else if (status === "starting") this.setState("starting");
    });
    kernel.connectionStatusChanged.connect((_k, c) => {
      if (c === "disconnected") this.setState("disconnected");
    });
  }

  /** Runs one cell; resolves with the outputs when the kernel replies, rejects with CellError on an error. */
  async run(code: string, opts: RunOptions = {}): Promise<Output[]> {
    const kernel = this.kernel;
    if (!kernel || this.state === "dead") throw new KernelLostError("the kernel is not running: restart it");
    const outputs: Output[] = [];
    let error: CellError | undefined;
    const emit = (o: Output) => {
      outputs.push(o);
      opts.onOutput?.(o);
    };
    const future = kernel.requestExecute({ code, stop_on_error: false, store_history: true });
    future.onIOPub = (msg: KernelMessage.IIOPubMessage) => {
      const c = msg.content as Record<string, unknown>;
      switch (msg.header.msg_type) {
        case "stream":
          emit({ kind: "stream", name: c.name as "stdout" | "stderr", text: String(c.text) });
          break;
        case "display_data":
        case "update_display_data": {
          const transient = (c.transient ?? {}) as { display_id?: string };
          emit({ kind: "display", data: c.data as Record<string, unknown>, displayId: transient.display_id, update: msg.header.msg_type === "update_display_data" });
          break;
        }
        case "execute_result":
          emit({ kind: "result", data: c.data as Record<string, unknown> });
          break;
        case "clear_output":
          emit({ kind: "clear", wait: Boolean(c.wait) });
          break;
        case "error":
          error = new CellError(String(c.ename), String(c.evalue), (c.traceback as string[]) ?? []);
          break;
      }
    };
    let reply: KernelMessage.IExecuteReplyMsg;
    try {
      reply = await future.done;
    } catch (err) {
      // @jupyterlab/services cancels the pending request when the kernel dies or restarts.
      throw new KernelLostError(`The kernel died while running "${code.split("\n")[0]!.slice(0, 60)}…": what it held (the loaded model) is gone. Restart it to go on.`);
    }
    if (error) throw error;
    const content = reply.content as { status: string; ename?: string; evalue?: string; traceback?: string[] };
    if (content.status === "error") throw new CellError(content.ename ?? "Error", content.evalue ?? "", content.traceback ?? []);
    if (content.status === "aborted") throw new CellError("Aborted", "the cell was not run", []);
    return outputs;
  }

  async interrupt(): Promise<void> {
    await this.kernel?.interrupt();
  }

  async restart(): Promise<void> {
    if (!this.kernel) return this.start();
    const dead = this.state === "dead" || this.kernel.isDisposed;
    this.setState("restarting");
    if (dead) {
      this.kernel = undefined;
      return this.start();
    }
    try {
      await this.kernel.restart();
    } catch {
      // A kernel process that died may not restart in place: start a new one.
      this.kernel.dispose();
      this.kernel = undefined;
      return this.start();
    }
    await this.kernel.info;
  }

  /** Kills the kernel (for "stop everything"); the page offers restart afterwards. */
  async shutdown(): Promise<void> {
    await this.kernel?.shutdown();
  }

  get id(): string | undefined {
    return this.kernel?.id;
  }
}
