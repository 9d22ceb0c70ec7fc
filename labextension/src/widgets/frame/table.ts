/**
 * mo.ui.table with row selection. Runs inside the sandboxed frame
 * (serialized by ../script.ts): only its parameters and the frame's globals.
 *
 * marimo sends the rows in `data-data` as a JSON string of JSON (or, when
 * the kernel serves virtual files, a URL this opaque-origin frame cannot
 * fetch: then the table says so). The value is the list of selected row
 * indices (table.py `_convert_value`: ints or digit strings), or the row ids
 * marimo adds as `_marimo_row_id` when the table has stable row ids.
 */
import type { ControlFactory } from './types';

export const table: ControlFactory = (el, kit, emit) => {
  const source = kit.data<unknown>(el, 'data', '[]');
  let rows: Record<string, unknown>[] | null = null;
  if (Array.isArray(source)) {
    rows = source as Record<string, unknown>[];
  } else if (typeof source === 'string' && /^\s*\[/.test(source)) {
    try {
      rows = JSON.parse(source) as Record<string, unknown>[];
    } catch {
      rows = null;
    }
  }
  if (!rows) {
    kit.mount(el, kit.h('div', 'mc-note', 'This table is not available in the multiplayer view.'));
    return { set: () => undefined, setDisabled: () => undefined };
  }
  const mode = kit.data<string | null>(el, 'selection', null);
  const selectable = mode === 'single' || mode === 'multi';
  const columns = Object.keys(rows[0] ?? {}).filter(c => !c.startsWith('_marimo'));
  const idOf = (row: Record<string, unknown>, index: number): number => {
    const stable = row._marimo_row_id;
    return typeof stable === 'number' ? stable : index;
  };
  const ids = rows.map(idOf);
  let selected: number[] = [];
  const boxes: HTMLInputElement[] = [];
  const head = kit.h('tr', '');
  if (selectable) {
    head.append(kit.h('th', 'mc-select-col'));
  }
  columns.forEach(column => head.append(kit.h('th', '', column)));
  const body = kit.h('tbody', '');
  const name = `mc-table-${Math.random().toString(36).slice(2)}`;
  rows.forEach((row, i) => {
    const tr = kit.h('tr', '');
    if (selectable) {
      const box = kit.h('input', '');
      box.type = mode === 'single' ? 'radio' : 'checkbox';
      box.name = name;
      box.setAttribute('aria-label', `select row ${i}`);
      box.addEventListener('change', () => {
        selected =
          mode === 'single'
            ? [ids[i]]
            : ids.filter((_, j) => boxes[j].checked);
        emit(selected);
      });
      boxes.push(box);
      tr.append(kit.h('td', 'mc-select-col', box));
    }
    columns.forEach(column => {
      const cell = row[column];
      const shown = cell !== null && typeof cell === 'object' ? JSON.stringify(cell) : String(cell ?? '');
      tr.append(kit.h('td', '', shown));
    });
    body.append(tr);
  });
  const show = (value: unknown) => {
    if (!Array.isArray(value)) {
      return;
    }
    selected = value.map(Number).filter(n => Number.isInteger(n));
    boxes.forEach((box, i) => (box.checked = selected.includes(ids[i])));
  };
  show(kit.data(el, 'initial-value', []));
  const grid = kit.h('table', 'mc-table', kit.h('thead', '', head), body);
  kit.mount(el, kit.h('div', 'mc-table-scroll', grid));
  return { set: show, setDisabled: d => boxes.forEach(box => (box.disabled = d)) };
};
