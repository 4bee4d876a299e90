/**
 * Cell output on stdout/stderr → IOPub `stream` messages.
 *
 * process.stdout/stderr.write are replaced for the kernel's lifetime (console.*
 * and library progress bars write through them). Text is coalesced briefly so a
 * loop of console.log calls becomes a few messages, and flushed before any
 * other output so order is kept. Each write goes to the request whose code
 * produced it (AsyncLocalStorage), falling back to the latest request. The
 * kernel's own diagnostics use `log`, which reaches the real stderr (the
 * Jupyter server's log).
 */
import { StringDecoder } from "node:string_decoder";
import type { MessageHeader } from "../protocol/wire.js";

type Parent = Partial<MessageHeader> | undefined;
type StreamName = "stdout" | "stderr";

const MAX_PENDING = 64 * 1024;

export class OutputCapture {
  private pending?: { name: StreamName; parent: Parent; text: string };
  private scheduled = false;
  /** The real stderr, for the kernel's own log lines. */
  readonly log: (line: string) => void;

  constructor(
    private readonly send: (name: StreamName, text: string, parent: Parent) => void,
    private readonly parentNow: () => Parent,
  ) {
    const realErr = process.stderr.write.bind(process.stderr);
    this.log = (line) => void realErr(`[llama-ts kernel] ${line}\n`);
    this.patch(process.stdout, "stdout");
    this.patch(process.stderr, "stderr");
  }

  private patch(stream: NodeJS.WriteStream, name: StreamName): void {
    const decoder = new StringDecoder("utf8");
    const write = (chunk: unknown, encoding?: unknown, cb?: unknown): boolean => {
      const done = typeof encoding === "function" ? encoding : cb;
      let text: string;
      if (typeof chunk === "string") text = chunk;
      else if (chunk instanceof Uint8Array) text = decoder.write(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
      else text = String(chunk);
      if (text) this.write(name, text);
      if (typeof done === "function") queueMicrotask(() => (done as (e?: Error) => void)());
      return true;
    };
    stream.write = write as NodeJS.WriteStream["write"];
  }

  write(name: StreamName, text: string): void {
    const parent = this.parentNow();
    const p = this.pending;
    if (p && (p.name !== name || p.parent?.msg_id !== parent?.msg_id)) this.flush();
    if (this.pending) this.pending.text += text;
    else this.pending = { name, parent, text };
    if (this.pending.text.length > MAX_PENDING) this.flush();
    else if (!this.scheduled) {
      this.scheduled = true;
      setTimeout(() => {
        this.scheduled = false;
        this.flush();
      }, 5);
    }
  }

  flush(): void {
    const p = this.pending;
    this.pending = undefined;
    if (p && p.text) this.send(p.name, p.text, p.parent);
  }
}
