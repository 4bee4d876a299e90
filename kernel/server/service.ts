/**
 * What a service started beside Jupyter (the workbench) gets and gives back.
 * The kernel side owns these types: `llama-ts start` (cli/) imports them, and
 * nothing under kernel/ imports from cli/.
 */
import type { JupyterServer } from "./jupyter-server.js";

/** What a service needs of the running Jupyter server (a stub upstream in tests). */
export type JupyterEndpoint = Pick<JupyterServer, "flavor" | "baseUrl" | "token">;

export interface ServiceContext {
  /** The checkout (dist/, models/ and datasets/ live there). */
  root: string;
  jupyter: JupyterEndpoint;
  /** The model the notebooks and the workbench load by default (absolute path). */
  model: string;
  /** One line to stderr, prefixed by the caller. */
  log: (line: string) => void;
}

export interface RunningService {
  /** The label printed before the URL ("Workbench"). */
  name: string;
  /** What the user opens (for the workbench: with its secret as ?token=). */
  url: string;
  stop(): Promise<void>;
}
