/**
 * The models shipped with the package (`models/<name>/` beside package.json),
 * found from this module's own file — not the working directory — so that
 * `fromPretrained("tiny-stories")` works from a notebook saved anywhere.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

const PACKAGE_NAME = "llama-ts";
let cachedRoot: string | null | undefined;

/** The package root: the nearest folder above this module (lib/io or dist/lib/io) whose package.json is named "llama-ts". */
export function packageRoot(): string | undefined {
  if (cachedRoot !== undefined) return cachedRoot ?? undefined;
  let dir: string | undefined = path.dirname(fileURLToPath(import.meta.url));
  cachedRoot = null;
  while (dir) {
    const pj = path.join(dir, "package.json");
    try {
      if ((JSON.parse(fs.readFileSync(pj, "utf8")) as { name?: unknown }).name === PACKAGE_NAME) {
        cachedRoot = dir;
        break;
      }
    } catch {
      // no package.json here (or dist/cjs's nameless one): keep going up
    }
    const up = path.dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  return cachedRoot ?? undefined;
}

/** The package's models/ folder (undefined when the package root cannot be found). */
export function packageModelsDir(): string | undefined {
  const root = packageRoot();
  return root === undefined ? undefined : path.join(root, "models");
}

/** `models/<name>` of the package when `name` is a bare folder name that exists there. */
export function packageModel(name: string): string | undefined {
  if (!/^[\w][\w.-]*$/.test(name)) return undefined;
  const models = packageModelsDir();
  if (models === undefined) return undefined;
  const dir = path.join(models, name);
  return fs.existsSync(dir) ? dir : undefined;
}

/** The names of the package's models (for error messages). */
export function packageModelNames(): string[] {
  const models = packageModelsDir();
  if (models === undefined || !fs.existsSync(models)) return [];
  return fs.readdirSync(models).filter((n) => fs.statSync(path.join(models, n)).isDirectory()).sort();
}
