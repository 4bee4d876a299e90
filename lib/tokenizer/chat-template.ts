/**
 * Chat templates: the Jinja template in tokenizer_config.json, rendered with
 * @huggingface/jinja using the variables transformers passes (messages,
 * add_generation_prompt, tools, documents, the special token strings, plus
 * any extra variables; raise_exception and strftime_now are jinja built-ins).
 */
import { Template } from "@huggingface/jinja";
import { InputError, LlamaError } from "../errors.js";

export interface ChatMessage {
  role: string;
  content: string | unknown;
  [key: string]: unknown;
}

export interface ChatTemplateOptions {
  /** A template string (overrides the tokenizer's), or the name of one of several. */
  chatTemplate?: string | Record<string, string>;
  /** When the tokenizer has several named templates: which one (default "default"). */
  templateName?: string;
  addGenerationPrompt?: boolean;
  /** Let the last (assistant) message stay open for continuation. */
  continueFinalMessage?: boolean;
  tools?: unknown[];
  documents?: unknown[];
  /** Extra template variables (e.g. date_string). */
  variables?: Record<string, unknown>;
}

const compiled = new Map<string, Template>();

function compile(source: string, text: string): Template {
  let t = compiled.get(text);
  if (!t) {
    try {
      t = new Template(text);
    } catch (err) {
      throw new LlamaError(`${source}: chat template does not parse (${(err as Error).message})`);
    }
    if (compiled.size > 64) compiled.clear();
    compiled.set(text, t);
  }
  return t;
}

function pickTemplate(source: string, tmpl: string | Record<string, string> | undefined, name: string | undefined): string {
  if (tmpl === undefined) {
    throw new LlamaError(`${source}: this tokenizer has no chat_template (tokenizer_config.json); pass {chatTemplate: "..."}`);
  }
  if (typeof tmpl === "string") return tmpl;
  const key = name ?? "default";
  const t = tmpl[key];
  if (t === undefined) throw new LlamaError(`${source}: no chat template named "${key}" (available: ${Object.keys(tmpl).join(", ")})`);
  return t;
}

export function renderChatTemplate(
  source: string,
  tmpl: string | Record<string, string> | undefined,
  messages: readonly ChatMessage[],
  opts: ChatTemplateOptions,
  specialTokens: Record<string, string>,
): string {
  if (!Array.isArray(messages)) throw new InputError("applyChatTemplate: messages must be an array of {role, content}");
  messages.forEach((m, i) => {
    if (typeof m?.role !== "string") throw new InputError(`applyChatTemplate: messages[${i}] needs a string "role"`);
  });
  const text = pickTemplate(source, tmpl, opts.templateName);
  const template = compile(source, text);
  let rendered: string;
  try {
    rendered = template.render({
      ...specialTokens,
      ...(opts.variables ?? {}),
      messages,
      add_generation_prompt: opts.addGenerationPrompt === true,
      tools: opts.tools,
      documents: opts.documents,
      // raise_exception and strftime_now are built into @huggingface/jinja.
    });
  } catch (err) {
    if (err instanceof LlamaError) throw err;
    throw new LlamaError(`${source}: chat template failed to render (${(err as Error).message})`);
  }
  if (opts.continueFinalMessage) {
    // As transformers does: cut the rendering right after the final message's content.
    const last = messages[messages.length - 1];
    const content = typeof last?.content === "string" ? last.content.trim() : "";
    const at = content ? rendered.lastIndexOf(content) : -1;
    if (at < 0) throw new InputError("applyChatTemplate: continueFinalMessage needs the final message's content to appear in the rendered chat");
    rendered = rendered.slice(0, at + content.length);
  }
  return rendered;
}
