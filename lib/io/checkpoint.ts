/**
 * HF model folders: find the folder (a path, or an `org/name` id in the local
 * Hugging Face hub cache — never a download), and read its weights from one
 * `model.safetensors` or from shards listed in `model.safetensors.index.json`.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { FormatError, LlamaError } from "../errors.js";
import { SafetensorsFile, type TensorInfo } from "./safetensors.js";
import { packageModel, packageModelNames } from "./package-models.js";
import type { Tensor } from "../tensor/tensor.js";
import type { ByteAlloc } from "./byte-alloc.js";

export const SAFETENSORS_FILE = "model.safetensors";
export const SAFETENSORS_INDEX = "model.safetensors.index.json";

/** The hub cache folders to search, in order (HF_HUB_CACHE, $HF_HOME/hub, ~/.cache/huggingface/hub). */
export function hubCacheDirs(): string[] {
  const dirs: string[] = [];
  if (process.env.HF_HUB_CACHE) dirs.push(process.env.HF_HUB_CACHE);
  if (process.env.HF_HOME) dirs.push(path.join(process.env.HF_HOME, "hub"));
  const xdg = process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), ".cache");
  dirs.push(path.join(xdg, "huggingface", "hub"));
  return [...new Set(dirs)];
}

/** A snapshot folder of `org/name` in one hub cache, or undefined. */
function snapshotIn(cache: string, repoId: string, revision: string): string | undefined {
  const repo = path.join(cache, `models--${repoId.replace("/", "--")}`);
  if (!fs.existsSync(repo)) return undefined;
  const snapshots = path.join(repo, "snapshots");
  // refs/<revision> holds the commit hash the revision points at.
  const ref = path.join(repo, "refs", revision);
  if (fs.existsSync(ref)) {
    const commit = fs.readFileSync(ref, "utf8").trim();
    const dir = path.join(snapshots, commit);
    if (/^[0-9a-f]{6,64}$/i.test(commit) && fs.existsSync(dir)) return dir;
  }
  const direct = path.join(snapshots, revision);
  if (/^[0-9a-f]{6,64}$/i.test(revision) && fs.existsSync(direct)) return direct;
  if (revision !== "main" || !fs.existsSync(snapshots)) return undefined;
  // No refs/main: take the most recently modified snapshot.
  const all = fs.readdirSync(snapshots).map((d) => path.join(snapshots, d)).filter((d) => fs.statSync(d).isDirectory());
  all.sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs);
  return all[0];
}

/**
 * Resolves a model path, in order: an existing file or folder as is; a bare
 * name of a folder in the package's models/ ("tiny-stories", found from the
 * installed module, whatever the working directory); an `org/name` (optionally
 * `org/name@revision`) id in the local hub cache. Never downloads.
 */
export function resolveModelPath(nameOrPath: string): string {
  if (fs.existsSync(nameOrPath)) return nameOrPath;
  const shipped = packageModel(nameOrPath);
  if (shipped) return shipped;
  const m = /^([\w.-]+\/[\w.-]+)(?:@([\w.-]+))?$/.exec(nameOrPath);
  if (m && !nameOrPath.startsWith(".")) {
    const [, repoId, revision = "main"] = m;
    const caches = hubCacheDirs();
    for (const cache of caches) {
      const dir = snapshotIn(cache, repoId!, revision);
      if (dir) return dir;
    }
    throw new LlamaError(
      `model "${nameOrPath}": no such folder, and not in the local Hugging Face cache ` +
        `(looked in ${caches.join(", ")}); llama-ts never downloads — fetch it with \`huggingface-cli download ${repoId}\``,
    );
  }
  const names = packageModelNames();
  throw new LlamaError(
    `model folder not found: ${nameOrPath}` + (names.length ? ` (nor a model of the package: ${names.join(", ")})` : ""),
  );
}

/** resolveModelPath for a model folder (a file is an error naming it). */
export function resolveModelDir(pathOrHubId: string): string {
  const dir = resolveModelPath(pathOrHubId);
  if (!fs.statSync(dir).isDirectory()) {
    throw new LlamaError(`${pathOrHubId}: expected a model folder (with config.json and model.safetensors), got a file`);
  }
  return dir;
}

/** The tensors of a checkpoint folder, across shards, read one at a time. */
export class CheckpointReader {
  private constructor(
    readonly dir: string,
    private readonly files: SafetensorsFile[],
    private readonly where: ReadonlyMap<string, SafetensorsFile>,
  ) {}

  static open(dir: string): CheckpointReader {
    const single = path.join(dir, SAFETENSORS_FILE);
    const indexFile = path.join(dir, SAFETENSORS_INDEX);
    if (fs.existsSync(single)) {
      const f = SafetensorsFile.open(single);
      return new CheckpointReader(dir, [f], new Map(f.names().map((n) => [n, f])));
    }
    if (fs.existsSync(indexFile)) return CheckpointReader.openSharded(dir, indexFile);
    const present = fs.readdirSync(dir).filter((n) => /\.(bin|pth|pt|gguf)$/.test(n));
    throw new FormatError(
      dir,
      `no ${SAFETENSORS_FILE} or ${SAFETENSORS_INDEX}` +
        (present.length ? ` (found ${present.join(", ")}: convert it to safetensors first)` : ""),
    );
  }

  private static openSharded(dir: string, indexFile: string): CheckpointReader {
    let index: unknown;
    try {
      index = JSON.parse(fs.readFileSync(indexFile, "utf8"));
    } catch (err) {
      throw new FormatError(indexFile, `malformed JSON (${(err as Error).message})`);
    }
    const map = (index as { weight_map?: unknown } | null)?.weight_map;
    if (!map || typeof map !== "object" || Array.isArray(map)) {
      throw new FormatError(indexFile, `expected a "weight_map" object {tensor name: shard file}`);
    }
    const opened = new Map<string, SafetensorsFile>();
    const where = new Map<string, SafetensorsFile>();
    try {
      for (const [name, shard] of Object.entries(map as Record<string, unknown>)) {
        // Shards must be plain file names in this folder (no paths out of it).
        if (typeof shard !== "string" || shard !== path.basename(shard) || !shard.endsWith(".safetensors")) {
          throw new FormatError(indexFile, `weight_map["${name}"] = ${JSON.stringify(shard)}: expected a .safetensors file name in ${dir}`);
        }
        let f = opened.get(shard);
        if (!f) {
          f = SafetensorsFile.open(path.join(dir, shard));
          opened.set(shard, f);
        }
        if (!f.has(name)) throw new FormatError(f.path, `no tensor named "${name}" (listed in ${SAFETENSORS_INDEX})`);
        where.set(name, f);
      }
    } catch (err) {
      for (const f of opened.values()) f.close();
      throw err;
    }
    return new CheckpointReader(dir, [...opened.values()], where);
  }

  names(): string[] {
    return [...this.where.keys()];
  }

  has(name: string): boolean {
    return this.where.has(name);
  }

  info(name: string): TensorInfo & { file: string } {
    const f = this.where.get(name);
    if (!f) throw new FormatError(this.dir, `missing tensor "${name}"`);
    return { ...f.info(name), file: f.path };
  }

  read(name: string, alloc?: ByteAlloc): Tensor {
    const f = this.where.get(name);
    if (!f) throw new FormatError(this.dir, `missing tensor "${name}"`);
    return f.read(name, alloc);
  }

  /** Total bytes of the named tensors (for progress). */
  bytes(names: readonly string[]): number {
    let n = 0;
    for (const name of names) if (this.has(name)) { const i = this.info(name); n += i.end - i.begin; }
    return n;
  }

  close(): void {
    for (const f of this.files) f.close();
  }
}
