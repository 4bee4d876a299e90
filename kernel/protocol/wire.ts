/**
 * The Jupyter wire protocol (5.3): how one message travels over a ZeroMQ socket.
 *
 *   [routing ids…, "<IDS|MSG>", hmac, header, parent_header, metadata, content, buffers…]
 *
 * The HMAC (hex, keyed with the connection file's `key`) covers the four JSON
 * frames in order; a message with a missing or wrong signature is dropped, so a
 * process that can reach the port but does not know the key cannot run code.
 */
import { createHmac, randomUUID, timingSafeEqual } from "node:crypto";

export const PROTOCOL_VERSION = "5.3";
const DELIMITER = "<IDS|MSG>";

export interface MessageHeader {
  msg_id: string;
  msg_type: string;
  session: string;
  username: string;
  date: string;
  version: string;
}

/** One decoded message. `content` is checked by each handler, never trusted here. */
export interface JupyterMessage<C = Record<string, unknown>> {
  /** ZeroMQ routing identities (ROUTER sockets); replies go back through them. */
  identities: Buffer[];
  header: MessageHeader;
  /** Empty object for messages without a parent. */
  parent_header: Partial<MessageHeader>;
  metadata: Record<string, unknown>;
  content: C;
  buffers: Buffer[];
}

export class SignatureError extends Error {
  override readonly name = "SignatureError";
}

/** Signs and verifies messages for one connection (one key, one kernel session id). */
export class WireCodec {
  private readonly key: Buffer;
  private readonly algorithm: string;

  /** `session` is this kernel's session id, shared by the main thread and the control worker. */
  constructor(key: string, signatureScheme = "hmac-sha256", readonly session: string = randomUUID()) {
    this.key = Buffer.from(key, "utf8");
    const m = /^hmac-(sha\d+)$/.exec(signatureScheme);
    if (!m) throw new Error(`unsupported signature_scheme "${signatureScheme}" (expected hmac-sha256)`);
    this.algorithm = m[1]!;
  }

  /** Hex HMAC of the four JSON frames; "" when the connection has no key (signing disabled). */
  sign(frames: readonly (Buffer | string)[]): string {
    if (this.key.length === 0) return "";
    const h = createHmac(this.algorithm, this.key);
    for (const f of frames) h.update(f);
    return h.digest("hex");
  }

  /** Decodes raw frames; throws SignatureError on a bad signature or malformed message. */
  decode(frames: Buffer[]): JupyterMessage {
    const at = frames.findIndex((f) => f.length === DELIMITER.length && f.toString("latin1") === DELIMITER);
    if (at < 0 || frames.length < at + 6) throw new SignatureError(`malformed message: ${frames.length} frames, delimiter at ${at}`);
    const signature = frames[at + 1]!.toString("ascii");
    const body = frames.slice(at + 2, at + 6);
    if (this.key.length > 0) {
      const expected = Buffer.from(this.sign(body), "ascii");
      const got = Buffer.from(signature, "ascii");
      if (got.length !== expected.length || !timingSafeEqual(got, expected)) throw new SignatureError("invalid HMAC signature");
    }
    const [header, parent, metadata, content] = body.map((b, i) => {
      try {
        return JSON.parse(b.toString("utf8")) as unknown;
      } catch {
        throw new SignatureError(`frame ${i} of the message body is not JSON`);
      }
    });
    if (!isObject(header) || typeof header.msg_type !== "string" || typeof header.msg_id !== "string") {
      throw new SignatureError("message header lacks msg_id/msg_type");
    }
    return {
      identities: frames.slice(0, at),
      header: header as unknown as MessageHeader,
      parent_header: (isObject(parent) ? parent : {}) as Partial<MessageHeader>,
      metadata: isObject(metadata) ? metadata : {},
      content: isObject(content) ? content : {},
      buffers: frames.slice(at + 6),
    };
  }

  /** A fresh header for a message this kernel sends. */
  header(msgType: string): MessageHeader {
    return {
      msg_id: randomUUID(),
      msg_type: msgType,
      session: this.session,
      username: "llama-ts",
      date: new Date().toISOString(),
      version: PROTOCOL_VERSION,
    };
  }

  /** Encodes a message (reply, broadcast) as frames ready for socket.send. */
  encode(
    msgType: string,
    content: object,
    parent: Partial<MessageHeader> | undefined,
    identities: Buffer[] = [],
    metadata: object = {},
    buffers: Buffer[] = [],
  ): (Buffer | string)[] {
    const body = [
      JSON.stringify(this.header(msgType)),
      JSON.stringify(parent ?? {}),
      JSON.stringify(metadata),
      JSON.stringify(content, jsonSafe),
    ];
    return [...identities, DELIMITER, this.sign(body), ...body, ...buffers];
  }
}

/**
 * JSON.stringify replacer for anything a cell hands to the frontend: typed
 * arrays (tensor data in a figure) become plain arrays, bigint and non-finite
 * numbers become strings, so a reply never crashes on them.
 */
export function jsonSafe(_key: string, value: unknown): unknown {
  if (ArrayBuffer.isView(value) && !(value instanceof DataView)) return Array.from(value as unknown as ArrayLike<number>);
  if (typeof value === "bigint") return value.toString();
  if (typeof value === "number" && !Number.isFinite(value)) return String(value);
  return value;
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The connection file Jupyter writes for a kernel (`-f`/`--connection-file`). */
export interface ConnectionInfo {
  transport: string;
  ip: string;
  shell_port: number;
  iopub_port: number;
  stdin_port: number;
  control_port: number;
  hb_port: number;
  key: string;
  signature_scheme: string;
}

export function parseConnectionInfo(text: string, file: string): ConnectionInfo {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new Error(`${file}: not JSON (${(err as Error).message})`);
  }
  if (!isObject(raw)) throw new Error(`${file}: expected a JSON object`);
  for (const port of ["shell_port", "iopub_port", "stdin_port", "control_port", "hb_port"]) {
    const p = raw[port];
    if (typeof p !== "number" || !Number.isInteger(p) || p <= 0 || p > 65535) {
      throw new Error(`${file}: field "${port}" must be a port number, got ${JSON.stringify(p)}`);
    }
  }
  return {
    transport: typeof raw.transport === "string" ? raw.transport : "tcp",
    ip: typeof raw.ip === "string" ? raw.ip : "127.0.0.1",
    shell_port: raw.shell_port as number,
    iopub_port: raw.iopub_port as number,
    stdin_port: raw.stdin_port as number,
    control_port: raw.control_port as number,
    hb_port: raw.hb_port as number,
    key: typeof raw.key === "string" ? raw.key : "",
    signature_scheme: typeof raw.signature_scheme === "string" ? raw.signature_scheme : "hmac-sha256",
  };
}

/** "tcp://127.0.0.1:5555" (or ipc://path-N for the ipc transport). */
export function endpoint(info: ConnectionInfo, port: number): string {
  return info.transport === "ipc" ? `ipc://${info.ip}-${port}` : `${info.transport}://${info.ip}:${port}`;
}
