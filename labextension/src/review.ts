/**
 * Suggestions shown inline under a cell, and a cell's history panel (versions
 * with author, time and diff; blame; restore). DOM only: the session sends the
 * requests (docs/protocol.md, "Suggestions" and "Cell history and blame").
 */
import { BlameLine, CellHistory, Suggestion } from './protocol';

export interface ReviewActions {
  acceptSuggestion(id: string): void;
  rejectSuggestion(id: string): void;
  cellHistory(cellId: string): Promise<CellHistory | null>;
  blame(cellId: string): Promise<BlameLine[] | null>;
  /** Make the cell's text its text at `version`: a normal edit everyone sees. */
  restore(cellId: string, version: number): Promise<void>;
  /** Make the whole notebook what it was at the time `at` (server side, as this person). */
  restoreNotebook(at: number): Promise<void>;
}

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className: string,
  text?: string
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  node.className = className;
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

function when(at: number): string {
  return new Date(at * 1000).toLocaleString();
}

function who(username: string | null): string {
  return username ?? 'the file on disk';
}

/** A unified diff as lines coloured by their first character. */
function diffBlock(diff: string): HTMLElement {
  const pre = el('pre', 'jp-MarimoCollab-diff');
  for (const line of diff.split('\n')) {
    const kind = line.startsWith('+') ? 'add' : line.startsWith('-') ? 'del' : 'ctx';
    pre.appendChild(el('div', `jp-MarimoCollab-diff-${kind}`, line || ' '));
  }
  return pre;
}

/** The pending suggestions that belong under one cell. */
export function renderSuggestions(
  container: HTMLElement,
  suggestions: Suggestion[],
  canReview: boolean,
  actions: ReviewActions,
  text: string
): void {
  container.replaceChildren();
  container.hidden = suggestions.length === 0;
  for (const s of suggestions) {
    const box = el('div', 'jp-MarimoCollab-suggestion');
    box.dataset.suggestionId = s.id;
    box.dataset.suggestionKind = s.kind;
    const name = s.author.display_name || s.author.username || 'someone';
    const title = el(
      'div',
      'jp-MarimoCollab-suggestionTitle',
      s.kind !== 'cell'
        ? `${name} suggests:`
        : s.after
          ? `${name} suggests a new cell below:`
          : `${name} suggests a new first cell:`
    );
    box.appendChild(title);
    box.appendChild(diffBlock(suggestionDiff(s, text)));
    if (canReview) {
      const buttons = el('div', 'jp-MarimoCollab-suggestionButtons');
      const accept = el('button', 'jp-Button jp-mod-styled jp-mod-accept', 'Accept');
      accept.dataset.action = 'accept-suggestion';
      accept.onclick = () => actions.acceptSuggestion(s.id);
      const reject = el('button', 'jp-Button jp-mod-styled jp-mod-reject', 'Reject');
      reject.dataset.action = 'reject-suggestion';
      reject.onclick = () => actions.rejectSuggestion(s.id);
      buttons.append(accept, reject);
      box.appendChild(buttons);
    }
    container.appendChild(box);
  }
}

/**
 * The whole lines a suggestion changes, before and after: its range is in the
 * server's current text, which the cell's editor shows (when it has no unsent
 * edits; otherwise only the replaced and proposed text).
 */
function suggestionDiff(s: Suggestion, text: string): string {
  const from = s.from ?? 0;
  const to = s.to ?? from;
  const fits = s.kind === 'edit' && to <= text.length && text.slice(from, to) === s.replaced;
  const start = fits ? text.lastIndexOf('\n', from - 1) + 1 : 0;
  const endAt = fits ? text.indexOf('\n', to) : -1;
  const end = endAt < 0 ? text.length : endAt;
  const before = fits ? text.slice(start, end) : (s.replaced ?? '');
  const after = fits ? text.slice(start, from) + s.insert + text.slice(to, end) : s.insert;
  const lines = s.kind === 'edit' && (before || fits) ? before.split('\n').map(l => `-${l}`) : [];
  return [...lines, ...after.split('\n').map(l => `+${l}`)].join('\n');
}

/** Fill a cell's history panel: newest version first, each restorable by editors. */
export async function renderHistory(
  container: HTMLElement,
  cellId: string,
  canRestore: boolean,
  actions: ReviewActions
): Promise<void> {
  container.replaceChildren(el('div', 'jp-MarimoCollab-historyNote', 'Loading history…'));
  const history = await actions.cellHistory(cellId);
  container.replaceChildren();
  if (!history) {
    container.appendChild(el('div', 'jp-MarimoCollab-historyNote', 'History unavailable.'));
    return;
  }
  const bar = el('div', 'jp-MarimoCollab-historyBar');
  const blameButton = el('button', 'jp-Button jp-mod-styled', 'Show who wrote each line');
  blameButton.dataset.action = 'blame';
  const blameBox = el('div', 'jp-MarimoCollab-blame');
  blameBox.hidden = true;
  blameButton.onclick = async () => {
    if (!blameBox.hidden) {
      blameBox.hidden = true;
      return;
    }
    const lines = await actions.blame(cellId);
    blameBox.replaceChildren();
    (lines ?? []).forEach((line, index) => {
      const row = el('div', 'jp-MarimoCollab-blameLine');
      row.textContent =
        `${index + 1}: ` +
        (line
          ? `${who(line.username)}${line.suggested_by ? ` (suggested by ${line.suggested_by})` : ''}, ${when(line.at)}`
          : 'before the kept history');
      blameBox.appendChild(row);
    });
    blameBox.hidden = false;
  };
  bar.appendChild(blameButton);
  container.append(bar, blameBox);

  const list = el('ol', 'jp-MarimoCollab-historyList');
  const entries = [...history.versions].reverse();
  entries.forEach((entry, index) => {
    const item = el('li', 'jp-MarimoCollab-historyEntry');
    item.dataset.version = String(entry.to_version);
    const by = entry.suggested_by ? ` (suggested by ${entry.suggested_by})` : '';
    const current = index === 0 ? ' — current' : '';
    item.appendChild(
      el(
        'div',
        'jp-MarimoCollab-historyHead',
        `v${entry.to_version}: ${who(entry.username)}${by}, ${when(entry.at)}${current}`
      )
    );
    item.appendChild(diffBlock(entry.diff));
    if (canRestore && index > 0) {
      item.appendChild(restoreButton(cellId, entry.to_version, actions));
      const whole = el('button', 'jp-Button jp-mod-styled', 'Restore the notebook to this time');
      whole.dataset.action = 'restore-notebook';
      whole.title = 'Every cell, their order and names as they were right after this change';
      whole.onclick = () => void actions.restoreNotebook(entry.at);
      item.appendChild(whole);
    }
    list.appendChild(item);
  });
  const oldest = el('li', 'jp-MarimoCollab-historyEntry');
  oldest.dataset.version = String(history.oldest_version);
  oldest.appendChild(
    el(
      'div',
      'jp-MarimoCollab-historyHead',
      `v${history.oldest_version}: ` +
        (history.complete ? 'as the cell began' : 'oldest version kept (older history is gone)')
    )
  );
  if (canRestore && history.versions.length > 0) {
    oldest.appendChild(restoreButton(cellId, history.oldest_version, actions));
  }
  list.appendChild(oldest);
  container.appendChild(list);
}

function restoreButton(cellId: string, version: number, actions: ReviewActions): HTMLElement {
  const button = el('button', 'jp-Button jp-mod-styled', 'Restore this version');
  button.dataset.action = 'restore-version';
  button.onclick = () => void actions.restore(cellId, version);
  return button;
}
