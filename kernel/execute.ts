/**
 * execute_request, start to finish: execute_input → compile → run → (stream,
 * display…) → execute_result or error → history → execute_reply.
 *
 * A failing cell's only output is one `error` message (ename, evalue, a
 * traceback on the cell's lines); nothing is echoed to stderr besides it.
 */
import type { CellCompiler } from "./compiler/cell-compiler.js";
import { isDisplayHandle } from "./display/api.js";
import { richRepr } from "./display/mime.js";
import { Interrupted, type Executor, type ExecutionToken } from "./runtime/executor.js";
import type { InterruptRequests } from "./runtime/interrupt-requests.js";
import { compileError, type ErrorContent, type Tracebacks } from "./runtime/traceback.js";
import type { History } from "./history.js";
import type { JupyterMessage } from "./protocol/wire.js";

export interface ExecuteDeps {
  compiler: CellCompiler;
  executor: Executor;
  interrupts: InterruptRequests;
  tracebacks: Tracebacks;
  history: History;
  /** Publishes on IOPub with this request as parent (after flushing pending stream text). */
  publish(msgType: string, content: object, parent: JupyterMessage["header"]): void;
}

export interface ExecuteOutcome {
  reply: Record<string, unknown>;
  /** True when the cell failed (the kernel then aborts queued cells if stop_on_error). */
  failed: boolean;
}

export class ExecuteHandler {
  executionCount = 0;
  /** The execution in progress (compiling or running), for interrupts. */
  private active?: ExecutionToken;

  constructor(private readonly deps: ExecuteDeps) {}

  async handle(msg: JupyterMessage): Promise<ExecuteOutcome> {
    const c = msg.content;
    const code = typeof c.code === "string" ? c.code : "";
    const silent = c.silent === true;
    const storeHistory = !silent && c.store_history !== false;
    if (storeHistory) this.executionCount++;
    const count = this.executionCount;
    const label = `Cell In[${count}]`;
    const { publish, history } = this.deps;
    if (!silent) publish("execute_input", { code, execution_count: count }, msg.header);

    const token: ExecutionToken = {
      parent: msg.header,
      identities: msg.identities,
      allowStdin: c.allow_stdin !== false,
      interrupted: false,
      requestsAtStart: this.deps.interrupts.count(),
    };
    let resultText: string | null = null;
    let error: ErrorContent | undefined;
    this.active = token;
    try {
      error = await this.compileAndRun(code, label, count, silent, token, msg, (t) => (resultText = t));
    } finally {
      this.active = undefined;
    }
    const userExpressions = await this.userExpressions(c.user_expressions, token);
    if (storeHistory) history.append(count, code, resultText);
    if (error) {
      publish("error", error, msg.header);
      return { reply: { status: "error", execution_count: count, ...error, user_expressions: userExpressions }, failed: true };
    }
    return { reply: { status: "ok", execution_count: count, payload: [], user_expressions: userExpressions }, failed: false };
  }

  /**
   * Interrupts the execution in progress: a running cell stops; one still
   * compiling (or loading its imports) never starts.
   */
  interrupt(): void {
    if (this.active) this.active.interrupted = true;
    this.deps.executor.interrupt();
  }

  private async compileAndRun(
    code: string,
    label: string,
    count: number,
    silent: boolean,
    token: ExecutionToken,
    msg: JupyterMessage,
    setResultText: (t: string | null) => void,
  ): Promise<ErrorContent | undefined> {
    const { publish } = this.deps;
    let error: ErrorContent | undefined;
    if (code.trim() !== "") {
      const compiled = this.deps.compiler.compile(code);
      if (!compiled.ok) {
        error = compileError(label, code, compiled.diagnostics);
      } else {
        try {
          const outcome = await this.deps.executor.run(compiled.cell, label, code, token);
          this.deps.compiler.commit(compiled.cell);
          if (outcome.hasValue && outcome.value !== undefined && !isDisplayHandle(outcome.value)) {
            const rich = richRepr(outcome.value);
            setResultText(typeof rich.data["text/plain"] === "string" ? rich.data["text/plain"] : null);
            if (!silent) publish("execute_result", { execution_count: count, data: rich.data, metadata: rich.metadata }, msg.header);
          }
        } catch (err) {
          // Names the cell declared before it threw exist at runtime: keep their types too (none
          // exist if it never started).
          if (!(err instanceof Interrupted && err.beforeStart)) this.deps.compiler.commit(compiled.cell);
          error = err instanceof Interrupted ? interruptedError(label) : this.deps.tracebacks.format(err);
        }
      }
    }
    return error;
  }

  /** user_expressions: each evaluated after the cell, returned as a MIME bundle or an error. */
  private async userExpressions(raw: unknown, token: ExecutionToken): Promise<Record<string, unknown>> {
    const out: Record<string, unknown> = {};
    if (typeof raw !== "object" || raw === null) return out;
    for (const [name, expr] of Object.entries(raw as Record<string, unknown>)) {
      const code = String(expr);
      const compiled = this.deps.compiler.compile(code);
      if (!compiled.ok) {
        out[name] = { status: "error", ...compileError(name, code, compiled.diagnostics) };
        continue;
      }
      try {
        const r = await this.deps.executor.run(compiled.cell, name, code, { ...token, interrupted: false, requestsAtStart: this.deps.interrupts.count() });
        out[name] = { status: "ok", ...richRepr(r.value) };
      } catch (err) {
        out[name] = { status: "error", ...this.deps.tracebacks.format(err) };
      }
    }
    return out;
  }
}

function interruptedError(label: string): ErrorContent {
  return {
    ename: "KeyboardInterrupt",
    evalue: `${label} was interrupted`,
    traceback: [`\x1b[0;31mKeyboardInterrupt\x1b[0m: ${label} was interrupted`],
  };
}
