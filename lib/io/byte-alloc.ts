/**
 * Where a reader puts the bytes it reads: a new buffer, or (a loader's) room
 * in the backend's own memory, so that a weight is read straight to where it
 * stays (Backend.hostBytes) instead of into a new buffer and then copied.
 * The result starts 8-byte aligned.
 */
export type ByteAlloc = (bytes: number) => Uint8Array;

/** A new, zeroed, aligned buffer of its own. */
export const freshBytes: ByteAlloc = (bytes) => new Uint8Array(new ArrayBuffer(bytes));
