/**
 * Runs activation hooks at named points of the forward pass. The model only
 * creates a HookRunner when hooks were given (inside a layer, Scope.tap is the
 * identity without one), and asks `has(name)` before building anything a hook
 * alone needs (per-head z, attention patterns), so a forward without hooks
 * pays nothing.
 */
import { InputError } from "../errors.js";
import type { Backend, DeviceTensor } from "../backend/backend.js";
import { Tensor } from "../tensor/tensor.js";
import type { HookFn, HookMap } from "./types.js";

export class HookRunner {
  private constructor(private readonly be: Backend, private readonly pick: (name: string) => HookFn | undefined) {}

  static create(be: Backend, hooks: HookMap | undefined): HookRunner | undefined {
    if (!hooks) return undefined;
    if (typeof hooks === "function") return new HookRunner(be, hooks);
    if (Object.keys(hooks).length === 0) return undefined;
    return new HookRunner(be, (name) => (Object.prototype.hasOwnProperty.call(hooks, name) ? hooks[name] : undefined));
  }

  has(name: string): boolean {
    return this.pick(name) !== undefined;
  }

  /**
   * Calls the hook for `name` (if any) with the activation read back to the
   * host. A returned tensor replaces the activation: it must have the same
   * shape; it is uploaded and the original released through `be` (a layer's
   * Scope, so the scope records the one and forgets the other).
   */
  async run(name: string, t: DeviceTensor, be: Backend = this.be): Promise<DeviceTensor> {
    const fn = this.pick(name);
    if (!fn) return t;
    const host = await be.read(t);
    const replaced = await fn(host, name);
    if (!replaced) return t;
    if (!(replaced instanceof Tensor)) throw new InputError(`hook "${name}" returned ${typeof replaced}, expected a Tensor or nothing`);
    if (replaced.shape.length !== t.shape.length || replaced.shape.some((d, i) => d !== t.shape[i])) {
      throw new InputError(`hook "${name}" returned shape [${replaced.shape.join(", ")}], expected [${t.shape.join(", ")}]`);
    }
    const up = be.upload(replaced.float());
    be.release(t);
    return up;
  }
}
