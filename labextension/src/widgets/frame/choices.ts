/**
 * Dropdown, radio and multiselect. Each factory runs inside the sandboxed
 * frame (serialized by ../script.ts): only its parameters and the frame's
 * globals.
 *
 * marimo sends option *keys* (the labels shown), never the Python values:
 * dropdown a list of zero or one key, multiselect a list of keys, radio one
 * key or null (input.py: dropdown/multiselect are UIElement[list[str], ...],
 * radio UIElement[str | None, ...]).
 */
import type { ControlFactory } from './types';

export const dropdown: ControlFactory = (el, kit, emit) => {
  const options = kit.data<string[]>(el, 'options', []);
  const initial = kit.data<string[]>(el, 'initial-value', []);
  const select = kit.h('select', 'mc-input mc-select');
  // An empty choice when marimo allows none, or when nothing is chosen yet.
  const noneAllowed = kit.data(el, 'allow-select-none', false) || initial.length === 0;
  if (noneAllowed) {
    const none = kit.h('option', '', '--');
    none.value = '';
    select.append(none);
  }
  // Keys may be any string, "" included: address options by index.
  options.forEach((key, i) => {
    const option = kit.h('option', '', key);
    option.value = String(i);
    select.append(option);
  });
  const show = (value: unknown) => {
    if (!Array.isArray(value)) {
      return;
    }
    const index = value.length ? options.indexOf(String(value[0])) : -1;
    select.value = index >= 0 ? String(index) : '';
  };
  show(initial);
  select.addEventListener('change', () => {
    emit(select.value === '' ? [] : [options[Number(select.value)]]);
  });
  kit.mount(el, select);
  return { set: show, setDisabled: d => (select.disabled = d) };
};

export const multiselect: ControlFactory = (el, kit, emit) => {
  const options = kit.data<string[]>(el, 'options', []);
  const max = kit.data<number | null>(el, 'max-selections', null);
  const select = kit.h('select', 'mc-input mc-select');
  select.multiple = true;
  select.size = Math.min(Math.max(options.length, 2), 6);
  options.forEach((key, i) => {
    const option = kit.h('option', '', key);
    option.value = String(i);
    select.append(option);
  });
  let chosen: string[] = [];
  const show = (value: unknown) => {
    if (!Array.isArray(value)) {
      return;
    }
    chosen = value.map(String).filter(key => options.includes(key));
    Array.from(select.options).forEach((option, i) => {
      option.selected = chosen.includes(options[i]);
    });
  };
  show(kit.data(el, 'initial-value', []));
  select.addEventListener('change', () => {
    const picked = Array.from(select.selectedOptions).map(o => options[Number(o.value)]);
    if (max !== null && picked.length > max) {
      show(chosen); // over marimo's limit: keep the previous choice
      return;
    }
    chosen = picked;
    emit(picked);
  });
  kit.mount(el, select);
  return { set: show, setDisabled: d => (select.disabled = d) };
};

export const radio: ControlFactory = (el, kit, emit) => {
  const options = kit.data<string[]>(el, 'options', []);
  const group = kit.h('div', kit.data(el, 'inline', false) ? 'mc-radios mc-inline-group' : 'mc-radios');
  group.setAttribute('role', 'radiogroup');
  const name = `mc-radio-${Math.random().toString(36).slice(2)}`;
  const inputs = options.map(key => {
    const input = kit.h('input', '');
    input.type = 'radio';
    input.name = name;
    input.addEventListener('change', () => {
      if (input.checked) {
        emit(key);
      }
    });
    group.append(kit.h('label', 'mc-inline', input, key));
    return input;
  });
  const show = (value: unknown) => {
    inputs.forEach((input, i) => (input.checked = options[i] === value));
  };
  show(kit.data<string | null>(el, 'initial-value', null));
  kit.mount(el, group);
  return { set: show, setDisabled: d => inputs.forEach(input => (input.disabled = d)) };
};
