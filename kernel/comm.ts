/**
 * Jupyter comms: two-way channels between frontend objects (widgets, the
 * workbench) and kernel objects. Either side opens a comm against a named
 * target; messages then flow both ways until one side closes it.
 *
 * Cells use the `comms` global: `comms.registerTarget(name, (comm, data) => …)`
 * for comms the frontend opens, `comms.open(target, data)` for ones the kernel opens.
 */
import { randomUUID } from "node:crypto";

export type CommData = Record<string, unknown>;
type MsgHandler = (data: CommData, buffers: Buffer[]) => void | Promise<void>;

/** The kernel side of one comm. */
export class Comm {
  private msgHandlers: MsgHandler[] = [];
  private closeHandlers: ((data: CommData) => void)[] = [];
  closed = false;

  constructor(
    readonly commId: string,
    readonly targetName: string,
    private readonly publish: (msgType: string, content: object) => void,
    private readonly forget: (id: string) => void,
  ) {}

  /** Sends data to the frontend side. */
  send(data: CommData = {}): void {
    if (this.closed) throw new Error(`comm ${this.commId} (${this.targetName}) is closed`);
    this.publish("comm_msg", { comm_id: this.commId, data });
  }

  /** Closes the comm from the kernel side. */
  close(data: CommData = {}): void {
    if (this.closed) return;
    this.publish("comm_close", { comm_id: this.commId, data });
    this.closedByPeer(data);
  }

  onMsg(handler: MsgHandler): void {
    this.msgHandlers.push(handler);
  }

  onClose(handler: (data: CommData) => void): void {
    this.closeHandlers.push(handler);
  }

  /** @internal */
  async deliver(data: CommData, buffers: Buffer[]): Promise<void> {
    for (const h of this.msgHandlers) await h(data, buffers);
  }

  /** @internal */
  closedByPeer(data: CommData): void {
    if (this.closed) return;
    this.closed = true;
    this.forget(this.commId);
    for (const h of this.closeHandlers) h(data);
  }
}

export type CommTarget = (comm: Comm, data: CommData) => void | Promise<void>;

/** The `comms` global. */
export interface Comms {
  registerTarget(name: string, handler: CommTarget): void;
  unregisterTarget(name: string): void;
  open(targetName: string, data?: CommData): Comm;
}

export class CommManager implements Comms {
  private readonly targets = new Map<string, CommTarget>();
  private readonly comms = new Map<string, Comm>();

  constructor(private readonly publish: (msgType: string, content: object) => void) {}

  registerTarget(name: string, handler: CommTarget): void {
    this.targets.set(name, handler);
  }

  unregisterTarget(name: string): void {
    this.targets.delete(name);
  }

  open(targetName: string, data: CommData = {}): Comm {
    const comm = this.make(randomUUID().replace(/-/g, ""), targetName);
    this.publish("comm_open", { comm_id: comm.commId, target_name: targetName, data });
    return comm;
  }

  private make(id: string, target: string): Comm {
    const comm = new Comm(id, target, this.publish, (cid) => this.comms.delete(cid));
    this.comms.set(id, comm);
    return comm;
  }

  /** comm_open from the frontend: hand it to the target, or close it if there is none. */
  async handleOpen(content: Record<string, unknown>): Promise<void> {
    const id = String(content.comm_id ?? "");
    const target = String(content.target_name ?? "");
    const handler = this.targets.get(target);
    if (!id) return;
    if (!handler) {
      this.publish("comm_close", { comm_id: id, data: { error: `no comm target named "${target}" in this kernel` } });
      return;
    }
    const comm = this.make(id, target);
    await handler(comm, asData(content.data));
  }

  async handleMsg(content: Record<string, unknown>, buffers: Buffer[]): Promise<void> {
    const comm = this.comms.get(String(content.comm_id ?? ""));
    if (comm) await comm.deliver(asData(content.data), buffers);
  }

  handleClose(content: Record<string, unknown>): void {
    this.comms.get(String(content.comm_id ?? ""))?.closedByPeer(asData(content.data));
  }

  /** comm_info_reply content: open comms, optionally of one target. */
  info(targetName?: string): Record<string, { target_name: string }> {
    const out: Record<string, { target_name: string }> = {};
    for (const [id, c] of this.comms) if (!targetName || c.targetName === targetName) out[id] = { target_name: c.targetName };
    return out;
  }
}

function asData(v: unknown): CommData {
  return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as CommData) : {};
}
