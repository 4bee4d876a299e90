import * as fs from "node:fs";
import * as path from "node:path";

/**
 * Writes a file atomically: the content goes to a temp file in the same
 * folder, which is fsynced and renamed over the target. A crash or an error
 * midway leaves no half-written file behind.
 */
export function writeFileAtomic(file: string, write: (fd: number) => void): void {
  const t = openTemp(file);
  try {
    write(t.fd);
  } catch (err) {
    discardTemp(t);
    throw err;
  }
  commitTemp(t, file);
}

/** writeFileAtomic for a writer that awaits between writes (same temp file, fsync and rename). */
export async function writeFileAtomicAsync(file: string, write: (fd: number) => Promise<void>): Promise<void> {
  const t = openTemp(file);
  try {
    await write(t.fd);
  } catch (err) {
    discardTemp(t);
    throw err;
  }
  commitTemp(t, file);
}

interface TempFile { readonly fd: number; readonly path: string }

/** A temp file beside the target (same folder, so the rename cannot cross file systems). */
function openTemp(file: string): TempFile {
  const dir = path.dirname(file);
  fs.mkdirSync(dir, { recursive: true });
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${Date.now()}.tmp`);
  return { fd: fs.openSync(tmp, "w"), path: tmp };
}

function commitTemp(t: TempFile, file: string): void {
  try {
    fs.fsyncSync(t.fd);
    fs.closeSync(t.fd);
    fs.renameSync(t.path, file);
  } catch (err) {
    discardTemp(t);
    throw err;
  }
}

function discardTemp(t: TempFile): void {
  try { fs.closeSync(t.fd); } catch { /* already closed */ }
  fs.rmSync(t.path, { force: true });
}

/** Atomic write of a whole string or buffer. */
export function writeTextAtomic(file: string, content: string | Uint8Array): void {
  writeFileAtomic(file, (fd) => {
    const buf = typeof content === "string" ? Buffer.from(content, "utf8") : content;
    let off = 0;
    while (off < buf.length) off += fs.writeSync(fd, buf, off, buf.length - off);
  });
}

/** Writes all of `bytes` to `fd` (writeSync may write less than asked). */
export function writeAll(fd: number, bytes: Uint8Array): void {
  let off = 0;
  while (off < bytes.length) off += fs.writeSync(fd, bytes, off, bytes.length - off);
}
