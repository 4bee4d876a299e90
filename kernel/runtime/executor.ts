/**
 * Runs compiled cells. Each cell is the body of an async function evaluated
 * in this process's global context (tslab's executor model): top-level names
 * live on one shared `exports` object, so later cells see them; `await` works
 * at the top level.
 *
 * Every execution carries an ExecutionToken through AsyncLocalStorage, so code
 * a cell leaves running (timers, promises) still knows which request it
 * belongs to: its output goes to that cell, and after an interrupt its next
 * `await` throws instead of running on (the compiler routes each `await`
 * through `__llts.checkpoint`).
 *
 * Interrupts: synchronous code stops through vm's breakOnSigint (the control
 * channel turns an interrupt_request into SIGINT for this process); a pending
 * `await` stops through a promise race; a cell interrupted before its run
 * began (while compiling) never starts (see InterruptRequests).
 */
import { AsyncLocalStorage } from "node:async_hooks";
import * as path from "node:path";
import * as vm from "node:vm";
import type { CompiledCell } from "../compiler/cell-compiler.js";
import type { MessageHeader } from "../protocol/wire.js";
import type { InterruptRequests } from "./interrupt-requests.js";
import type { CellModules } from "./modules.js";
import type { Tracebacks } from "./traceback.js";

export interface ExecutionToken {
  /** The execute_request this code runs for (outputs go to it). */
  parent: Partial<MessageHeader>;
  /** Shell routing identities of that request (for stdin input_request). */
  identities: Buffer[];
  allowStdin: boolean;
  interrupted: boolean;
  /** InterruptRequests.count() when this execution began: a request counted since is meant for it. */
  requestsAtStart: number;
}

export const executionContext = new AsyncLocalStorage<ExecutionToken>();

export class Interrupted extends Error {
  override readonly name = "KeyboardInterrupt";
  /** @param beforeStart the cell's code never ran (it was interrupted while compiling or loading imports) */
  constructor(readonly beforeStart = false) {
    super("the cell was interrupted");
  }
}

const ARGS = "__llama_ts_cell_args__";

export interface CellOutcome {
  hasValue: boolean;
  value: unknown;
}

export class Executor {
  /** The notebook's top-level names, shared by all cells. */
  readonly scope: Record<string, unknown>;
  private counter = 0;
  private running?: { token: ExecutionToken; reject: (e: Error) => void };

  constructor(
    private readonly modules: CellModules,
    private readonly tracebacks: Tracebacks,
    private readonly cwd: string,
    private readonly interrupts: InterruptRequests,
  ) {
    this.scope = createScope();
  }

  async run(cell: CompiledCell, label: string, source: string, token: ExecutionToken): Promise<CellOutcome> {
    if (token.interrupted) throw new Interrupted(true); // interrupted while it was compiling
    const filename = `llama-ts-cell-${++this.counter}.js`;
    this.tracebacks.register(filename, label, source, cell.js, cell.maps, 1);
    let rejectInterrupt!: (e: Error) => void;
    const interrupted = new Promise<never>((_, reject) => (rejectInterrupt = reject));
    interrupted.catch(() => {});
    const running = { token, reject: rejectInterrupt, started: false };
    this.running = running;
    try {
      return await executionContext.run(token, async () => {
        await Promise.race([this.modules.preload(cell.imports), interrupted]);
        // A SIGINT from outside (signal mode) that arrived while the cell was compiling still waits in
        // libuv's signal pipe, and once breakOnSigint takes over it is lost. The pipe is read in the
        // poll phase; from a poll callback (a shell message) one setImmediate runs before the next
        // poll, the second after it.
        for (let turn = 0; turn < 2; turn++) await new Promise((r) => setImmediate(r));
        const ctx = {
          last: undefined as unknown,
          import: (spec: string) => this.modules.import(spec),
          checkpoint: checkpoint,
          // The cell's first statement, run under breakOnSigint, and the one gate before its code: a
          // SIGINT handled so far marked the token; an interrupt_request counted before this point may
          // have had its SIGINT dropped as the run began (the control worker counts first, then
          // signals), so the count decides too.
          start: () => {
            if (token.interrupted || this.interrupts.count() !== token.requestsAtStart) throw new Interrupted();
            running.started = true;
          },
        };
        (globalThis as Record<string, unknown>)[ARGS] = [
          this.scope,
          (spec: string) => this.modules.require(spec),
          ctx,
          path.join(this.cwd, label),
          this.cwd,
        ];
        const code = `(async function (exports, require, __llts, __filename, __dirname) { __llts.start();\n${cell.js}\n}).apply(undefined, globalThis.${ARGS});`;
        let promise: Promise<unknown>;
        try {
          promise = vm.runInThisContext(code, { filename, breakOnSigint: true }) as Promise<unknown>;
        } catch (err) {
          throw isSigintError(err) ? new Interrupted() : err;
        } finally {
          delete (globalThis as Record<string, unknown>)[ARGS];
        }
        await Promise.race([promise, interrupted]);
        return { hasValue: cell.hasLastExpression, value: ctx.last };
      });
    } catch (err) {
      if (err instanceof Interrupted || isSigintError(err)) {
        token.interrupted = true;
        throw new Interrupted(!running.started);
      }
      throw err;
    } finally {
      this.running = undefined;
    }
  }

  /** Interrupts the running cell, if any. Returns whether one was running. */
  interrupt(): boolean {
    const r = this.running;
    if (!r) return false;
    r.token.interrupted = true;
    r.reject(new Interrupted());
    return true;
  }

  /** Forgets every top-level name (restart-like reset without a new process). */
  reset(): void {
    for (const k of Object.keys(this.scope)) delete this.scope[k];
  }
}

/** `await x` in a cell becomes `await __llts.checkpoint(x)`: resumes only if not interrupted. */
async function checkpoint<T>(value: T): Promise<Awaited<T>> {
  const v = await value;
  if (executionContext.getStore()?.interrupted) throw new Interrupted();
  return v;
}

function isSigintError(err: unknown): boolean {
  return (err as { code?: string } | null)?.code === "ERR_SCRIPT_EXECUTION_INTERRUPTED";
}

/**
 * The shared top-level scope. TypeScript's CommonJS output re-exports imports
 * with getters (`Object.defineProperty(exports, "A", { get })`); storing the
 * value instead keeps every top-level name a plain, reassignable property.
 */
function createScope(): Record<string, unknown> {
  const target: Record<string, unknown> = {};
  return new Proxy(target, {
    defineProperty(_t, prop, attrs) {
      if (prop === "__esModule") return true;
      target[prop as string] = attrs.get ? attrs.get() : attrs.value;
      return true;
    },
  });
}
