/**
 * splitHeads (with RoPE) and the KV-cache append, deferred so that a layer's
 * q rotation, k rotation + append and v append are one dispatch.
 *
 * splitHeads returns a deferred tensor whose job is "x [B, T, heads*D] →
 * [B, heads, T, D], rotated". kvAppend of such a tensor does not copy it: it
 * queues the same job aimed at the cache rows P.. instead (the head tensor's
 * own job is dropped when the model releases it). The queue is recorded when
 * any of its tensors is read — for a decode step, by attention reading q, whose
 * own job joins the queue first — as ropeKernel dispatches of up to
 * ROPE_MAX_JOBS jobs each.
 */
import { LlamaError } from "../../lib/errors.js";
import type { Deferred, GpuTensor } from "../buffers.js";
import { ROPE_MAX_JOBS, flatGrid, ropeKernel } from "../kernels/index.js";
import { act, type GpuRuntime } from "../runtime.js";
import { kvAppend as eagerKvAppend, kvReserve } from "./attention.js";

/** One head split: src [B, T, heads*D] → dst [B, heads, cap, D] at rows off.., rotated with `table` when given. */
interface HeadsJob {
  readonly src: GpuTensor;
  readonly dst: GpuTensor;
  readonly B: number;
  readonly T: number;
  readonly heads: number;
  readonly D: number;
  readonly cap: number;
  readonly off: number;
  /** [cos | sin], each [B, T, D/2]. */
  readonly table?: GpuTensor;
}

class PendingHeads implements Deferred {
  constructor(private readonly rt: GpuRuntime, readonly job: HeadsJob) {
    rt.hold(job.src);
    if (job.table) rt.hold(job.table);
  }
  materialize(): void {
    const q = queueOf(this.rt);
    if (!q.jobs.includes(this)) q.jobs.push(this);
    q.record();
  }
  cancel(): void {
    const q = queueOf(this.rt);
    const i = q.jobs.indexOf(this);
    if (i >= 0) q.jobs.splice(i, 1);
    this.done();
  }
  done(): void {
    this.rt.unhold(this.job.src);
    if (this.job.table) this.rt.unhold(this.job.table);
  }
}

/** Jobs that must be recorded before their tensors are read, and the last rope table (q and k share one). */
class HeadsQueue {
  jobs: PendingHeads[] = [];
  lastTable?: { tensor: GpuTensor; data: Float32Array };

  constructor(private readonly rt: GpuRuntime) {}

  record(): void {
    const jobs = this.jobs;
    this.jobs = [];
    for (let i = 0; i < jobs.length;) {
      const group = [jobs[i]!];
      while (group.length < ROPE_MAX_JOBS && i + group.length < jobs.length && fits(group, jobs[i + group.length]!.job)) {
        group.push(jobs[i + group.length]!);
      }
      recordJobs(this.rt, group.map((p) => p.job));
      for (const p of group) {
        if (p.job.dst.pending === p) p.job.dst.pending = undefined;
        p.done();
      }
      i += group.length;
    }
  }
}

/** Jobs share a dispatch when their sizes agree and the rotating ones read the same table. */
function fits(group: readonly PendingHeads[], job: HeadsJob): boolean {
  const first = group[0]!.job;
  if (job.B !== first.B || job.T !== first.T || job.D !== first.D) return false;
  const table = group.find((p) => p.job.table)?.job.table;
  return !job.table || !table || job.table === table;
}

const queues = new WeakMap<GpuRuntime, HeadsQueue>();
function queueOf(rt: GpuRuntime): HeadsQueue {
  let q = queues.get(rt);
  if (!q) queues.set(rt, (q = new HeadsQueue(rt)));
  return q;
}

function recordJobs(rt: GpuRuntime, jobs: readonly HeadsJob[]): void {
  const { B, T, D } = jobs[0]!;
  const table = jobs.find((j) => j.table)?.table;
  const fields: number[] = [];
  let n = 0;
  for (const j of jobs) {
    fields.push(j.heads, j.cap, j.off, n);
    n += B * T * j.heads * D;
  }
  const bindings = [
    ...jobs.map((j) => ({ buf: j.src.buf })),
    ...jobs.map((j) => ({ buf: j.dst.storage })),
    ...(table ? [{ buf: table.storage }] : []),
  ];
  const rotations = jobs.map((j) => (j.table ? "r" : "c")).join("");
  const half = D / 2;
  rt.exec.dispatch(ropeKernel(rotations), bindings, [n, T, D, T * half, B * T * half, ...fields],
    flatGrid(n, rt.ctx.limits.maxComputeWorkgroupsPerDimension));
}

/** The rope table [cos | sin] on the device; the previous one when the values are the same (q and k of a layer). */
function ropeTable(rt: GpuRuntime, cos: Float32Array, sin: Float32Array): { tensor: GpuTensor; fresh: boolean } {
  const q = queueOf(rt);
  const last = q.lastTable;
  const n = cos.length;
  if (last && last.tensor.holds > 0 && last.data.length === 2 * n) {
    let same = true;
    for (let i = 0; i < n && same; i++) same = last.data[i] === cos[i] && last.data[n + i] === sin[i];
    if (same) return { tensor: last.tensor, fresh: false };
  }
  const data = new Float32Array(2 * n);
  data.set(cos);
  data.set(sin, n);
  const tensor = rt.adopt(rt.hostBuffer(data), [2, n], "f32");
  q.lastTable = { tensor, data };
  return { tensor, fresh: true };
}

/** x [B, T, heads*D] → [B, heads, T, D], with RoPE when cos/sin [B, T, D/2] are given; deferred. */
export function splitHeads(rt: GpuRuntime, xIn: GpuTensor, heads: number, rope?: { cos: Float32Array; sin: Float32Array }): GpuTensor {
  const x = act(xIn, "splitHeads input");
  const [B, T, HD] = x.shape as [number, number, number];
  const D = HD / heads;
  if (x.shape.length !== 3 || !Number.isInteger(D)) throw new LlamaError(`splitHeads: cannot split [${x.shape.join(", ")}] into ${heads} heads`);
  if (rope) {
    if (D % 2 !== 0) throw new LlamaError(`splitHeads: rotary embedding needs an even head_dim, got ${D}`);
    if (rope.cos.length !== B * T * (D / 2) || rope.sin.length !== rope.cos.length) {
      throw new LlamaError(`splitHeads: rope tables have ${rope.cos.length}/${rope.sin.length} entries, expected ${B}*${T}*${D / 2}`);
    }
  }
  rt.settle(x);
  const out = rt.empty([B, heads, T, D]);
  const table = rope && ropeTable(rt, rope.cos, rope.sin);
  out.pending = new PendingHeads(rt, { src: x, dst: out, B, T, heads, D, cap: T, off: 0, table: table?.tensor });
  if (table?.fresh) rt.release(table.tensor); // the jobs that read it hold it
  return out;
}

/**
 * cache [B, k, P, D] (or undefined) + x [B, k, T, D] → [B, k, P+T, D]. A
 * deferred splitHeads result is not copied: its job is queued again, aimed at the cache.
 */
export function kvAppend(rt: GpuRuntime, cache: GpuTensor | undefined, xIn: GpuTensor, reserve = 0): GpuTensor {
  const x = act(xIn, "kvAppend input");
  const p = x.pending;
  if (!(p instanceof PendingHeads)) return eagerKvAppend(rt, cache, x, reserve);
  const { out, past } = kvReserve(rt, cache, x, reserve);
  const job = new PendingHeads(rt, { ...p.job, dst: out, cap: out.capacity, off: past });
  queueOf(rt).jobs.push(job);
  out.pending = job;
  return out;
}
