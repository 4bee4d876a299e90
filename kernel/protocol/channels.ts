/**
 * The kernel's sockets. Shell (ROUTER), stdin (ROUTER) and IOPub (PUB) live on
 * the main thread; control and heartbeat live on a worker thread
 * (control-worker.ts) so they answer while a cell blocks the main thread.
 * Sends on one socket are serialized: zeromq allows one pending send at a time.
 */
import { Worker } from "node:worker_threads";
import * as zmq from "zeromq";
import { endpoint, WireCodec, type ConnectionInfo, type JupyterMessage, type MessageHeader } from "./wire.js";
import type { InterruptRequests } from "../runtime/interrupt-requests.js";
import type { ControlWorkerData, FromControl, SerializedMessage, ToControl } from "./control-worker.js";

export type RequestHandler = (msg: JupyterMessage, channel: "shell" | "control") => void;

class SerialSender {
  private chain: Promise<unknown> = Promise.resolve();
  constructor(private readonly socket: zmq.Writable) {}
  send(frames: (Buffer | string)[]): Promise<void> {
    const next = this.chain.then(() => this.socket.send(frames));
    this.chain = next.catch(() => {});
    return next;
  }
}

export class Channels {
  readonly codec: WireCodec;
  private readonly shell = new zmq.Router();
  private readonly stdin = new zmq.Router();
  private readonly iopub = new zmq.Publisher();
  private readonly shellOut = new SerialSender(this.shell);
  private readonly stdinOut = new SerialSender(this.stdin);
  private readonly iopubOut = new SerialSender(this.iopub);
  private worker?: Worker;
  private pendingInput?: { resolve: (s: string) => void; reject: (e: Error) => void };
  /** Called when the control worker has turned an interrupt_request into SIGINT. */
  onInterrupt: (parent: Partial<MessageHeader>) => void = () => {};

  constructor(
    private readonly info: ConnectionInfo,
    private readonly interrupts: InterruptRequests,
  ) {
    this.codec = new WireCodec(info.key, info.signature_scheme);
  }

  async start(onRequest: RequestHandler): Promise<void> {
    await this.shell.bind(endpoint(this.info, this.info.shell_port));
    await this.stdin.bind(endpoint(this.info, this.info.stdin_port));
    await this.iopub.bind(endpoint(this.info, this.info.iopub_port));
    const data: ControlWorkerData = {
      info: this.info,
      session: this.codec.session,
      controlEndpoint: endpoint(this.info, this.info.control_port),
      heartbeatEndpoint: endpoint(this.info, this.info.hb_port),
      interruptRequests: this.interrupts.buffer,
    };
    const worker = new Worker(new URL("./control-worker.js", import.meta.url), { workerData: data });
    this.worker = worker;
    worker.unref();
    await new Promise<void>((resolve, reject) => {
      worker.once("error", reject);
      worker.on("message", (m: FromControl) => {
        if (m.kind === "ready") resolve();
        else if (m.kind === "request") onRequest(deserialize(m.msg), "control");
        else if (m.kind === "interrupted") this.onInterrupt(m.msg.header);
      });
    });
    void this.readShell(onRequest);
    void this.readStdin();
  }

  private async readShell(onRequest: RequestHandler): Promise<void> {
    for await (const frames of this.shell) {
      let msg: JupyterMessage;
      try {
        msg = this.codec.decode(frames);
      } catch (err) {
        process.stderr.write(`[llama-ts kernel] dropped a shell message: ${(err as Error).message}\n`);
        continue;
      }
      onRequest(msg, "shell");
    }
  }

  private async readStdin(): Promise<void> {
    for await (const frames of this.stdin) {
      let msg: JupyterMessage;
      try {
        msg = this.codec.decode(frames);
      } catch {
        continue;
      }
      if (msg.header.msg_type !== "input_reply" || !this.pendingInput) continue;
      const p = this.pendingInput;
      this.pendingInput = undefined;
      if (msg.content.status === "error") p.reject(new Error("the frontend cancelled the input request"));
      else p.resolve(String(msg.content.value ?? ""));
    }
  }

  /** Replies on the channel the request came from. */
  reply(req: JupyterMessage, channel: "shell" | "control", msgType: string, content: object, metadata: object = {}): Promise<void> {
    if (channel === "control") {
      const parent: SerializedMessage = { identities: req.identities, header: req.header, content: {} };
      this.worker?.postMessage({ kind: "reply", msgType, content, parent } satisfies ToControl);
      return Promise.resolve();
    }
    return this.shellOut.send(this.codec.encode(msgType, content, req.header, req.identities, metadata));
  }

  publish(msgType: string, content: object, parent: Partial<MessageHeader> | undefined): Promise<void> {
    // IOPub topic: "kernel.<session>.<msg_type>" (clients subscribe to everything).
    const topic = Buffer.from(`kernel.${this.codec.session}.${msgType}`);
    return this.iopubOut.send(this.codec.encode(msgType, content, parent, [topic]));
  }

  /** Sends input_request to the client behind `identities` and waits for its input_reply. */
  requestInput(prompt: string, password: boolean, parent: Partial<MessageHeader>, identities: Buffer[]): Promise<string> {
    if (this.pendingInput) return Promise.reject(new Error("another input() is already waiting for the frontend"));
    return new Promise<string>((resolve, reject) => {
      this.pendingInput = { resolve, reject };
      this.stdinOut.send(this.codec.encode("input_request", { prompt, password }, parent, identities)).catch(reject);
    });
  }

  /** Fails a pending input() (interrupt, shutdown). */
  cancelInput(reason: Error): void {
    const p = this.pendingInput;
    this.pendingInput = undefined;
    p?.reject(reason);
  }

  async close(): Promise<void> {
    this.worker?.postMessage({ kind: "close" } satisfies ToControl);
    // Let queued IOPub messages (final status: idle) leave before the sockets go.
    await new Promise((r) => setTimeout(r, 50));
    for (const s of [this.shell, this.stdin, this.iopub]) {
      s.linger = 200;
      s.close();
    }
    await this.worker?.terminate();
  }
}

function deserialize(m: SerializedMessage): JupyterMessage {
  return {
    identities: m.identities.map((b) => Buffer.from(b)),
    header: m.header,
    parent_header: {},
    metadata: {},
    content: m.content,
    buffers: [],
  };
}
