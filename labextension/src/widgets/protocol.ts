/**
 * The messages between the page and the notebook's output frame (marimo's own
 * frontend, see marimo_collab_ext/frontend/output_frame.js), and the page's
 * checks on what the frame sends.
 *
 * The frame runs output code anybody in the room may have written, so the page
 * treats everything it posts as untrusted: known shapes only, bounded sizes,
 * and only for UI elements that are really shown in the notebook's outputs.
 */

/** Every message between page and frame has a `type` with this prefix. */
export const PREFIX = 'mc:';

/**
 * A value or argument bigger than this is no control's doing. The largest
 * real ones are `mo.ui.file` uploads (base64): about 2 MB of files, within the
 * server's 4 MiB frame limit (`max_message_bytes`).
 */
export const MAX_VALUE_CHARS = 3_000_000;
/** Function-call ids and names are short identifiers. */
const MAX_NAME_CHARS = 256;

/** frame → page: `mc:set-ui-values` (marimo's `api/kernel/set_ui_element_value`). */
export interface SetUiValues {
  objectIds: string[];
  values: unknown[];
}

/** frame → page: `mc:function-call` (marimo's `api/kernel/function_call`). */
export interface FunctionCall {
  functionCallId: string;
  namespace: string;
  functionName: string;
  args: Record<string, unknown>;
}

/** frame → page: `mc:set-model-value` (marimo's `api/kernel/set_model_value`). */
export interface SetModelValue {
  modelId: string;
  message: Record<string, unknown>;
  buffers: string[];
}

/** Exactly what JSON carries (nothing the structured clone added), or null if too big. */
function asJson(value: unknown, limit = MAX_VALUE_CHARS): unknown {
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch {
    return null; // cycles cannot be sent to the server
  }
  if (json === undefined || json.length > limit) {
    return null;
  }
  return JSON.parse(json) as unknown;
}

function isName(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= MAX_NAME_CHARS;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The message's type without the prefix, if it is one of ours. */
export function messageType(data: unknown): string | null {
  if (!isRecord(data) || typeof data.type !== 'string' || !data.type.startsWith(PREFIX)) {
    return null;
  }
  return data.type.slice(PREFIX.length);
}

export function parseSetUiValues(data: Record<string, unknown>): SetUiValues | null {
  const { objectIds, values } = data;
  if (!Array.isArray(objectIds) || !Array.isArray(values)) {
    return null;
  }
  if (objectIds.length !== values.length || objectIds.length > 64) {
    return null;
  }
  if (!objectIds.every(isName)) {
    return null;
  }
  const clean = asJson(values);
  return Array.isArray(clean) ? { objectIds: objectIds as string[], values: clean } : null;
}

export function parseFunctionCall(data: Record<string, unknown>): FunctionCall | null {
  const { functionCallId, namespace, functionName } = data;
  if (!isName(functionCallId) || !isName(namespace) || !isName(functionName)) {
    return null;
  }
  const args = asJson(data.args ?? {});
  return isRecord(args) ? { functionCallId, namespace, functionName, args } : null;
}

export function parseSetModelValue(data: Record<string, unknown>): SetModelValue | null {
  const { modelId } = data;
  const message = asJson(data.message);
  const buffers = asJson(data.buffers ?? []);
  if (!isName(modelId) || !isRecord(message) || !Array.isArray(buffers)) {
    return null;
  }
  if (!buffers.every(buffer => typeof buffer === 'string')) {
    return null;
  }
  return { modelId, message, buffers: buffers as string[] };
}

/** frame → page: `mc:sizes`, each cell's output height. */
export function parseSizes(data: Record<string, unknown>): Map<string, number> {
  const sizes = new Map<string, number>();
  if (Array.isArray(data.sizes)) {
    for (const entry of data.sizes) {
      if (Array.isArray(entry) && typeof entry[0] === 'string' && typeof entry[1] === 'number') {
        if (Number.isFinite(entry[1]) && entry[1] >= 0) {
          sizes.set(entry[0], entry[1]);
        }
      }
    }
  }
  return sizes;
}

/**
 * object-id → random-id of each marimo UI element in an output's HTML.
 *
 * marimo writes `<marimo-ui-element object-id='..' random-id='..'>` with
 * single quotes (as the server's kernel/outputs.py also assumes); a new
 * random-id means the element was created again, with its initial value.
 * Elements nested in other elements' JSON attributes (tabs, arrays) are
 * written with escaped quotes; they are found too.
 */
export function uiElementsIn(html: string): Map<string, string> {
  const found = new Map<string, string>();
  const text = unescapeAttr(unescapeAttr(html))
    .replace(/\\u003c/gi, '<')
    .replace(/\\u003e/gi, '>')
    .replace(/\\u0027/gi, "'")
    .replace(/\\+"/g, '"');
  const pattern = /<marimo-ui-element object-id=['"]([^'"]*)['"] random-id=['"]([^'"]*)['"]/g;
  for (const match of text.matchAll(pattern)) {
    found.set(match[1], match[2]);
  }
  return found;
}

function unescapeAttr(text: string): string {
  return text.replace(/&(#\d+|#x[0-9a-f]+|amp|lt|gt|quot|apos);/gi, (_, code: string) => {
    const named: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };
    const lower = code.toLowerCase();
    if (lower in named) {
      return named[lower];
    }
    return String.fromCodePoint(
      lower.startsWith('#x') ? parseInt(lower.slice(2), 16) : parseInt(lower.slice(1), 10)
    );
  });
}
