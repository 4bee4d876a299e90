/**
 * Errors a user can act on. Every error we raise for bad input names the
 * file, field, tensor or token id at fault and what was expected, so the CLI
 * can print `error.message` as one line without a stack trace.
 */
export class LlamaError extends Error {
  override readonly name: string = "LlamaError";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** A file on disk is malformed, truncated or has an unexpected layout. */
export class FormatError extends LlamaError {
  override readonly name = "FormatError";
  constructor(readonly file: string, detail: string, options?: { cause?: unknown }) {
    super(`${file}: ${detail}`, options);
  }
}

/** A config field (config.json, params.json, GGUF metadata…) is missing or invalid. */
export class ConfigError extends LlamaError {
  override readonly name = "ConfigError";
}

/** Inputs to a model or tokenizer call are invalid (token id out of range, empty input, …). */
export class InputError extends LlamaError {
  override readonly name = "InputError";
}

/** Throws a ConfigError/InputError-style failure when `cond` is false. */
export function check(cond: unknown, message: string | (() => string), Kind: new (m: string) => LlamaError = LlamaError): asserts cond {
  if (!cond) throw new Kind(typeof message === "function" ? message() : message);
}
