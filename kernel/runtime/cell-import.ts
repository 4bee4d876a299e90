/**
 * The one place the kernel calls `import()` for a cell. import-hooks.ts
 * recognises this module as the parent and resolves the specifier from the
 * notebook's folder instead (see there).
 */
export function importForCell(specifier: string): Promise<Record<string, unknown>> {
  return import(specifier) as Promise<Record<string, unknown>>;
}
