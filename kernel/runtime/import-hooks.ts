/**
 * Module resolution hooks (node:module `register`) for imports made by notebook
 * cells. Node resolves `import("x")` relative to the module that calls it; the
 * kernel calls it on the cells' behalf from cell-import.js, so this hook
 * re-parents those requests onto the notebook's folder (as if the cell were a
 * file there) and sends `llama-ts` to this checkout's build. Every other import
 * in the process passes through untouched.
 */
interface HookData {
  /** URL of cell-import.js: only requests from it are re-parented. */
  importer: string;
  /** A (non-existent) file URL inside the notebook folder. */
  base: string;
  /** Bare specifier → URL (e.g. "llama-ts" → file:///…/dist/index.js). */
  aliases: Record<string, string>;
}

interface ResolveContext {
  parentURL?: string;
  conditions: string[];
  importAttributes?: Record<string, string>;
}
type NextResolve = (specifier: string, context?: ResolveContext) => Promise<{ url: string; format?: string | null }>;

let data: HookData | undefined;

export async function initialize(d: HookData): Promise<void> {
  data = d;
}

export async function resolve(specifier: string, context: ResolveContext, next: NextResolve) {
  if (!data || context.parentURL !== data.importer) return next(specifier, context);
  const alias = data.aliases[specifier];
  if (alias) return { url: alias, shortCircuit: true };
  return next(specifier, { ...context, parentURL: data.base });
}
