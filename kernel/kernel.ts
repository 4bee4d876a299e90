/**
 * The llama-ts Jupyter kernel: routes requests to their handlers.
 *
 * Shell requests run one at a time, in arrival order, each framed by IOPub
 * `status: busy` / `status: idle`. Control requests (shutdown, kernel_info)
 * do not wait behind shell work. When a cell fails and its request asked
 * `stop_on_error`, the execute_requests that were already waiting are
 * answered `aborted` (as ipykernel does); requests that arrive later run.
 */
import * as path from "node:path";
import { fileURLToPath } from "node:url";
// `require`, not an ESM import: node scans a CommonJS module imported from ESM for its export
// names, and on typescript.js (9 MB) that scan costs ~0.7 s of kernel start-up.
import ts = require("typescript");
import { releaseWebGpu } from "../gpu/teardown.js";
import { CellCompiler } from "./compiler/cell-compiler.js";
import { isComplete } from "./compiler/is-complete.js";
import { CommManager } from "./comm.js";
import { createCellGlobals, type CellGlobals } from "./display/api.js";
import { ExecuteHandler } from "./execute.js";
import { History } from "./history.js";
import { Channels } from "./protocol/channels.js";
import { PROTOCOL_VERSION, type ConnectionInfo, type JupyterMessage, type MessageHeader } from "./protocol/wire.js";
import { executionContext, Executor, Interrupted } from "./runtime/executor.js";
import { InterruptRequests } from "./runtime/interrupt-requests.js";
import { createCellModules } from "./runtime/modules.js";
import { OutputCapture } from "./runtime/output-capture.js";
import { Tracebacks } from "./runtime/traceback.js";
import { toCodePoints, toUtf16 } from "./protocol/cursor.js";

export interface KernelOptions {
  connection: ConnectionInfo;
  /** The notebook's folder (Jupyter starts the kernel there). */
  cwd: string;
  /** The llama-ts checkout this kernel belongs to. */
  root: string;
  historyDir?: string;
  version: string;
  /** Called once the type-checker is warmed up (main.ts saves TypeScript's code cache then). */
  afterWarmUp?: () => void;
}

type Channel = "shell" | "control";

/** How long the warm-up waits for a client's first kernel_info before starting anyway. */
const WARM_UP_GRACE_MS = 1500;
/**
 * How long after a kernel_info reply the warm-up waits for another kernel_info: jupyter_client
 * asks again when no IOPub message reached it within 0.2 s of the reply (its SUB socket was not
 * connected yet), and that second reply must not wait ~2 s behind the warm-up.
 */
const WARM_UP_AFTER_INFO_MS = 250;

export class Kernel {
  private readonly channels: Channels;
  private readonly queue: JupyterMessage[] = [];
  private pumping = false;
  private lastParent?: Partial<MessageHeader>;
  private compiler!: CellCompiler;
  private executor!: Executor;
  private execute!: ExecuteHandler;
  private history!: History;
  private comms!: CommManager;
  private capture!: OutputCapture;
  private shuttingDown = false;
  private warmedUp = false;
  private warmUpTimer?: NodeJS.Timeout;
  private readonly interrupts = new InterruptRequests();

  constructor(private readonly opts: KernelOptions) {
    this.channels = new Channels(opts.connection, this.interrupts);
  }

  async start(): Promise<void> {
    const { cwd, root } = this.opts;
    const here = path.dirname(fileURLToPath(import.meta.url));
    this.capture = new OutputCapture(
      (name, text, parent) => void this.channels.publish("stream", { name, text }, parent),
      () => this.parentNow(),
    );
    this.comms = new CommManager((type, content) => this.publishNow(type, content));
    const globals = createCellGlobals(
      {
        publish: (type, content) => this.publishNow(type, content),
        requestInput: (prompt, password) => this.requestInput(prompt, password),
      },
      this.comms,
    );
    installGlobals(globals);
    const tracebacks = new Tracebacks([here + path.sep]);
    this.compiler = new CellCompiler({ cwd, root, globalsDts: globalsDeclarations(here) });
    const modules = await createCellModules(cwd, root);
    this.executor = new Executor(modules, tracebacks, cwd, this.interrupts);
    this.history = new History(this.opts.historyDir);
    this.execute = new ExecuteHandler({
      compiler: this.compiler,
      executor: this.executor,
      interrupts: this.interrupts,
      tracebacks,
      history: this.history,
      publish: (type, content, parent) => this.publishTo(type, content, parent),
    });

    process.on("SIGINT", () => {
      this.execute.interrupt();
      this.channels.cancelInput(new Interrupted());
    });
    // Code a cell left running must never take the kernel down: report it where the cell's output goes.
    process.on("uncaughtException", (err) => this.reportBackground(err));
    process.on("unhandledRejection", (err) => this.reportBackground(err));
    this.channels.onInterrupt = (parent) => {
      void this.channels.publish("status", { execution_state: "busy" }, parent);
      void this.channels.publish("status", { execution_state: "idle" }, parent);
    };
    await this.channels.start((msg, channel) => this.receive(msg, channel));
    void this.channels.publish("status", { execution_state: "starting" }, undefined);
    this.capture.log(`started in ${cwd} (history session ${this.history.session})`);
    // Loading llama-ts is asynchronous (resolution and reads happen on the loader-hooks thread),
    // so it starts first and overlaps with the warm-up below.
    modules.import("llama-ts").catch(() => {});
    // The first type-check parses ~3 MB of lib/@types/node/llama-ts declarations: the bulk of
    // "kernel start → first result", and it blocks the event loop. It starts just after the
    // client's kernel_info is answered (so "ready" does not wait on it), or after a short grace
    // period when no client asks; an execute_request arriving first just queues.
    this.scheduleWarmUp(WARM_UP_GRACE_MS);
  }

  private scheduleWarmUp(delayMs: number): void {
    if (this.warmedUp) return;
    clearTimeout(this.warmUpTimer);
    this.warmUpTimer = setTimeout(() => this.warmUp(), delayMs);
  }

  /** Type-checks a trivial cell once, so the first real cell finds the declarations parsed. */
  private warmUp(): void {
    if (this.warmedUp) return;
    this.warmedUp = true;
    clearTimeout(this.warmUpTimer);
    const t0 = performance.now();
    try {
      this.compiler.warmUp();
      this.capture.log(`type-checker warmed up in ${Math.round(performance.now() - t0)} ms`);
    } catch (err) {
      this.capture.log(`warm-up compile failed: ${(err as Error).message}`);
    }
    // Off the path to the first result: the first cell is likely waiting in the queue right now.
    const after = this.opts.afterWarmUp;
    if (after) setTimeout(after, 1000).unref();
  }

  private parentNow(): Partial<MessageHeader> | undefined {
    return executionContext.getStore()?.parent ?? this.lastParent;
  }

  private publishTo(type: string, content: object, parent: Partial<MessageHeader> | undefined): void {
    this.capture.flush();
    void this.channels.publish(type, content, parent);
  }

  private publishNow(type: string, content: object): void {
    this.publishTo(type, content, this.parentNow());
  }

  private requestInput(prompt: string, password: boolean): Promise<string> {
    const token = executionContext.getStore();
    if (!token || !token.allowStdin) {
      return Promise.reject(new Error("input() is not available: this frontend does not support stdin (allow_stdin is false)"));
    }
    this.capture.flush();
    return this.channels.requestInput(prompt, password, token.parent, token.identities);
  }

  private reportBackground(err: unknown): void {
    const e = err as Error;
    this.capture.write("stderr", `Uncaught in background code: ${e?.stack ?? String(err)}\n`);
  }

  private receive(msg: JupyterMessage, channel: Channel): void {
    if (channel === "control") {
      void this.handle(msg, channel);
      return;
    }
    this.queue.push(msg);
    void this.pump();
  }

  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.queue.length) {
        await this.handle(this.queue.shift()!, "shell");
      }
    } finally {
      this.pumping = false;
    }
  }

  /**
   * Takes the execute_requests that were already received when a cell failed
   * out of the queue. Done before the failure is replied, so a request the
   * client sends after seeing the error is never caught by it.
   */
  private async takeWaitingExecutes(): Promise<JupyterMessage[]> {
    // Let messages already sitting in the socket reach the queue first.
    await new Promise((r) => setImmediate(r));
    const waiting = this.queue.filter((m) => m.header.msg_type === "execute_request");
    for (const msg of waiting) this.queue.splice(this.queue.indexOf(msg), 1);
    return waiting;
  }

  private async abort(msgs: JupyterMessage[]): Promise<void> {
    for (const msg of msgs) {
      await this.channels.publish("status", { execution_state: "busy" }, msg.header);
      await this.channels.reply(msg, "shell", "execute_reply", { status: "aborted", execution_count: this.execute.executionCount });
      await this.channels.publish("status", { execution_state: "idle" }, msg.header);
    }
  }

  /** Handles one request; returns true when it was a failed execute. */
  private async handle(msg: JupyterMessage, channel: Channel): Promise<boolean> {
    const type = msg.header.msg_type;
    const isExecute = type === "execute_request";
    if (isExecute) this.lastParent = msg.header;
    await this.channels.publish("status", { execution_state: "busy" }, msg.header);
    let failed = false;
    try {
      const reply = (t: string, content: object, metadata?: object) => this.channels.reply(msg, channel, t, content, metadata);
      switch (type) {
        case "kernel_info_request":
          await reply("kernel_info_reply", this.kernelInfo());
          break;
        case "execute_request": {
          const started = new Date().toISOString();
          const out = await this.execute.handle(msg);
          failed = out.failed;
          const aborted = failed && msg.content.stop_on_error !== false ? await this.takeWaitingExecutes() : [];
          this.capture.flush();
          await reply("execute_reply", out.reply, { started, dependencies_met: true, engine: this.channels.codec.session, status: out.reply.status });
          await this.abort(aborted);
          break;
        }
        case "complete_request":
          await reply("complete_reply", this.complete(msg.content));
          break;
        case "inspect_request":
          await reply("inspect_reply", this.inspect(msg.content));
          break;
        case "is_complete_request":
          await reply("is_complete_reply", isComplete(String(msg.content.code ?? "")));
          break;
        case "history_request":
          await reply("history_reply", { status: "ok", history: this.history.query(msg.content) });
          break;
        case "comm_info_request": {
          const target = typeof msg.content.target_name === "string" ? msg.content.target_name : undefined;
          await reply("comm_info_reply", { status: "ok", comms: this.comms.info(target) });
          break;
        }
        case "comm_open":
          await this.inContext(msg, () => this.comms.handleOpen(msg.content));
          break;
        case "comm_msg":
          await this.inContext(msg, () => this.comms.handleMsg(msg.content, msg.buffers));
          break;
        case "comm_close":
          await this.inContext(msg, async () => this.comms.handleClose(msg.content));
          break;
        case "shutdown_request":
          await this.shutdown(msg, channel);
          return false;
        default:
          this.capture.log(`ignored unsupported message type ${type} on ${channel}`);
      }
    } catch (err) {
      this.capture.log(`error while handling ${type}: ${(err as Error)?.stack ?? String(err)}`);
      this.capture.write("stderr", `llama-ts kernel: internal error while handling ${type}: ${(err as Error)?.message ?? String(err)}\n`);
    } finally {
      this.capture.flush();
      await this.channels.publish("status", { execution_state: "idle" }, msg.header);
    }
    if (type === "kernel_info_request") this.scheduleWarmUp(WARM_UP_AFTER_INFO_MS);
    return failed;
  }

  /** Runs comm handlers (cell code) with output going to the comm message's request. */
  private inContext(msg: JupyterMessage, fn: () => Promise<void>): Promise<void> {
    return executionContext.run({ parent: msg.header, identities: msg.identities, allowStdin: false, interrupted: false, requestsAtStart: this.interrupts.count() }, fn);
  }

  private kernelInfo(): object {
    return {
      status: "ok",
      protocol_version: PROTOCOL_VERSION,
      implementation: "llama-ts",
      implementation_version: this.opts.version,
      language_info: {
        name: "typescript",
        version: ts.version,
        mimetype: "text/typescript",
        file_extension: ".ts",
        pygments_lexer: "typescript",
        codemirror_mode: { name: "javascript", typescript: true },
      },
      banner: `llama-ts ${this.opts.version}: TypeScript ${ts.version} on Node.js ${process.version}. ` +
        `Globals: display, clearOutput, input, comms. Import the library with: import { ... } from "llama-ts"`,
      help_links: [
        { text: "TypeScript handbook", url: "https://www.typescriptlang.org/docs/handbook/intro.html" },
        { text: "Node.js API", url: `https://nodejs.org/docs/${process.version}/api/` },
      ],
      debugger: false,
    };
  }

  private complete(content: Record<string, unknown>): object {
    const code = String(content.code ?? "");
    const cursor = toUtf16(code, typeof content.cursor_pos === "number" ? content.cursor_pos : code.length);
    const r = this.compiler.complete(code, cursor);
    return {
      status: "ok",
      matches: r.matches,
      cursor_start: toCodePoints(code, r.start),
      cursor_end: toCodePoints(code, r.end),
      metadata: {},
    };
  }

  private inspect(content: Record<string, unknown>): object {
    const code = String(content.code ?? "");
    const cursor = toUtf16(code, typeof content.cursor_pos === "number" ? content.cursor_pos : code.length);
    const text = this.compiler.inspect(code, cursor);
    return text === undefined
      ? { status: "ok", found: false, data: {}, metadata: {} }
      : { status: "ok", found: true, data: { "text/plain": text, "text/markdown": "```typescript\n" + text + "\n```" }, metadata: {} };
  }

  private async shutdown(msg: JupyterMessage, channel: Channel): Promise<void> {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    const restart = msg.content.restart === true;
    this.capture.flush();
    await this.channels.reply(msg, channel, "shutdown_reply", { status: "ok", restart });
    await this.channels.publish("status", { execution_state: "idle" }, msg.header);
    await this.channels.close();
    // A notebook's WebGPU backends are finalized before the process exits, not during its exit
    // (gpu/teardown.ts); bounded, so that a wedged driver cannot hold the shutdown.
    await Promise.race([releaseWebGpu(), new Promise((resolve) => setTimeout(resolve, 5_000).unref())]);
    process.exit(0);
  }
}

function installGlobals(g: CellGlobals): void {
  const target = globalThis as Record<string, unknown>;
  for (const [k, v] of Object.entries(g)) target[k] = v;
}

/** Type declarations of the cell globals, pointing at this kernel's own .d.ts files. */
function globalsDeclarations(here: string): string {
  const api = JSON.stringify(path.join(here, "display", "api.js"));
  const comm = JSON.stringify(path.join(here, "comm.js"));
  return [
    `import type { Display, ClearOutput, Input } from ${api};`,
    `import type { Comms } from ${comm};`,
    "declare global {",
    "  const display: Display;",
    "  const clearOutput: ClearOutput;",
    "  const input: Input;",
    "  const comms: Comms;",
    "}",
    "export {};",
    "",
  ].join("\n");
}
