/**
 * The control and heartbeat channels, on their own thread.
 *
 * A cell that spins in a synchronous loop blocks the main thread's event loop,
 * so the main thread cannot even read an interrupt_request. This worker can:
 * it answers heartbeats while cells run, counts each interrupt_request (in
 * memory shared with the main thread) and turns it into SIGINT for this
 * process (vm's breakOnSigint stops synchronous code; the main thread's
 * SIGINT handler stops a pending await), and forwards every other
 * control request to the main thread. If the main thread does not answer a
 * shutdown_request within a grace period (it is stuck), the worker replies
 * itself and ends the process.
 */
import { parentPort, workerData } from "node:worker_threads";
import * as zmq from "zeromq";
import { InterruptRequests } from "../runtime/interrupt-requests.js";
import { WireCodec, type ConnectionInfo, type JupyterMessage } from "./wire.js";

export interface ControlWorkerData {
  info: ConnectionInfo;
  session: string;
  controlEndpoint: string;
  heartbeatEndpoint: string;
  /** InterruptRequests.buffer of the main thread. */
  interruptRequests: SharedArrayBuffer;
}

/** worker → main */
export type FromControl =
  | { kind: "ready" }
  | { kind: "request"; msg: SerializedMessage }
  | { kind: "interrupted"; msg: SerializedMessage };
/** main → worker */
export type ToControl = { kind: "reply"; msgType: string; content: object; parent: SerializedMessage } | { kind: "close" };

/** A message as it crosses the thread boundary (Buffers become Uint8Arrays). */
export interface SerializedMessage {
  identities: Uint8Array[];
  header: JupyterMessage["header"];
  content: Record<string, unknown>;
}

const SHUTDOWN_GRACE_MS = 3000;

async function main(): Promise<void> {
  const data = workerData as ControlWorkerData;
  const codec = new WireCodec(data.info.key, data.info.signature_scheme, data.session);
  const control = new zmq.Router();
  const hb = new zmq.Reply();
  await control.bind(data.controlEndpoint);
  await hb.bind(data.heartbeatEndpoint);
  const port = parentPort!;
  const interrupts = new InterruptRequests(data.interruptRequests);
  let closing = false;

  const send = (msgType: string, content: object, parent: SerializedMessage) =>
    control.send(codec.encode(msgType, content, parent.header, parent.identities.map((b) => Buffer.from(b))));

  port.on("message", (m: ToControl) => {
    if (m.kind === "reply") void send(m.msgType, m.content, m.parent);
    else if (m.kind === "close") {
      closing = true;
      control.close();
      hb.close();
    }
  });

  void (async () => {
    for await (const frames of hb) {
      if (closing) break;
      await hb.send(frames);
    }
  })().catch(() => {});

  port.postMessage({ kind: "ready" } satisfies FromControl);
  for await (const frames of control) {
    let msg: JupyterMessage;
    try {
      msg = codec.decode(frames);
    } catch {
      continue; // unsigned or malformed: ignore, as the spec requires
    }
    const ser: SerializedMessage = { identities: msg.identities, header: msg.header, content: msg.content };
    if (msg.header.msg_type === "interrupt_request") {
      interrupts.add(); // first: a cell that starts after the signal was lost still sees the request
      process.kill(process.pid, "SIGINT");
      await send("interrupt_reply", { status: "ok" }, ser);
      port.postMessage({ kind: "interrupted", msg: ser } satisfies FromControl);
      continue;
    }
    port.postMessage({ kind: "request", msg: ser } satisfies FromControl);
    if (msg.header.msg_type === "shutdown_request") {
      const restart = msg.content.restart === true;
      setTimeout(() => {
        // The main thread did not finish shutting down: it is stuck in user code.
        void send("shutdown_reply", { status: "ok", restart }, ser).finally(() => process.kill(process.pid, "SIGKILL"));
      }, SHUTDOWN_GRACE_MS).unref();
    }
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`[llama-ts kernel] control channel failed: ${(err as Error)?.stack ?? String(err)}\n`);
  process.kill(process.pid, "SIGTERM");
});
