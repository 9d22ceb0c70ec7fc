/**
 * The messages between the page and the widget runtime inside each sandboxed
 * output frame, and the parent's checks on what a frame sends.
 *
 * A frame runs output code anybody in the room may have written, so the page
 * treats everything it posts as untrusted: known shapes only, and only for UI
 * elements that are really in that frame's own output HTML.
 */

/** frame → page: the user changed a control. */
export const SET_UI_VALUE = 'marimo-collab:set-ui-value';
/** frame → page: the runtime is listening; send the current values. */
export const WIDGETS_READY = 'marimo-collab:widgets-ready';
/** page → frame: a value set elsewhere (another peer, the join snapshot). */
export const UI_VALUE = 'marimo-collab:ui-value';
/** page → frame: whether the controls may be used (runners only). */
export const UI_READ_ONLY = 'marimo-collab:ui-read-only';

/** A value bigger than this is no control's doing (a table selection is a list of ints). */
export const MAX_VALUE_CHARS = 200_000;

/** What the runtime needs at start, serialized into the frame's script. */
export interface FrameConfig {
  readOnly: boolean;
  messages: {
    setUiValue: string;
    ready: string;
    uiValue: string;
    readOnly: string;
  };
}

export function frameConfig(readOnly: boolean): FrameConfig {
  return {
    readOnly,
    messages: {
      setUiValue: SET_UI_VALUE,
      ready: WIDGETS_READY,
      uiValue: UI_VALUE,
      readOnly: UI_READ_ONLY
    }
  };
}

export interface SetUiValue {
  objectId: string;
  value: unknown;
}

/** The message, if it is a well-formed set-ui-value; null otherwise. */
export function parseSetUiValue(data: unknown): SetUiValue | null {
  if (typeof data !== 'object' || data === null) {
    return null;
  }
  const { type, objectId, value } = data as Record<string, unknown>;
  if (type !== SET_UI_VALUE || typeof objectId !== 'string' || value === undefined) {
    return null;
  }
  let json: string;
  try {
    json = JSON.stringify(value);
  } catch {
    return null; // cycles cannot be sent to the server
  }
  if (json === undefined || json.length > MAX_VALUE_CHARS) {
    return null;
  }
  // Send exactly what JSON carries, nothing the structured clone added.
  return { objectId, value: JSON.parse(json) as unknown };
}

export function isReady(data: unknown): boolean {
  return (
    typeof data === 'object' &&
    data !== null &&
    (data as { type?: unknown }).type === WIDGETS_READY
  );
}

/**
 * object-id → random-id of each marimo UI element in an output's HTML.
 *
 * marimo writes `<marimo-ui-element object-id='..' random-id='..'>` with
 * single quotes (as the server's kernel/outputs.py also assumes); a new
 * random-id means the element was created again, with its initial value.
 */
export function uiElementsIn(html: string): Map<string, string> {
  const found = new Map<string, string>();
  const pattern = /<marimo-ui-element object-id='([^']*)' random-id='([^']*)'/g;
  for (const match of html.matchAll(pattern)) {
    found.set(unescapeAttr(match[1]), unescapeAttr(match[2]));
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
