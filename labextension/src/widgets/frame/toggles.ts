/**
 * Checkbox, switch and button. Each factory runs inside the sandboxed frame
 * (serialized by ../script.ts): only its parameters and the frame's globals.
 *
 * checkbox and switch send a bool. A button sends a click counter: marimo's
 * kernel treats 0 as "not clicked yet" and any other value as a click
 * (input.py `button._convert_value`, run_button.py), so each click sends the
 * previous count + 1, and peers' counters follow the echo.
 */
import type { ControlFactory } from './types';

export const checkbox: ControlFactory = (el, kit, emit) => {
  const input = kit.h('input', el.localName === 'marimo-switch' ? 'mc-switch' : 'mc-check');
  input.type = 'checkbox';
  if (el.localName === 'marimo-switch') {
    input.setAttribute('role', 'switch');
  }
  const show = (value: unknown) => {
    if (typeof value === 'boolean') {
      input.checked = value;
    }
  };
  show(kit.data(el, 'initial-value', false));
  input.addEventListener('change', () => emit(input.checked));
  // The label follows the box, as in marimo; clicking it toggles.
  const wrapper = kit.mount(el, input);
  const label = wrapper.querySelector('.mc-label');
  if (label) {
    const clickable = kit.h('label', 'mc-inline', input, ...label.childNodes);
    label.replaceWith(clickable);
    input.removeAttribute('aria-labelledby'); // the <label> names it now
  }
  return { set: show, setDisabled: d => (input.disabled = d) };
};

export const button: ControlFactory = (el, kit, emit) => {
  const kind = kit.data(el, 'kind', 'neutral');
  const node = kit.h('button', `mc-button mc-button-${kind}`);
  node.type = 'button';
  let label: unknown = '';
  try {
    label = JSON.parse(el.getAttribute('data-label') ?? '""');
  } catch {
    label = '';
  }
  // Label HTML is output HTML like the rest of this sandboxed frame.
  node.innerHTML = typeof label === 'string' && label.trim() ? label : 'Click';
  const tooltip = kit.data<string | null>(el, 'tooltip', null);
  if (tooltip) {
    node.title = tooltip;
  }
  let count = kit.data(el, 'initial-value', 0);
  node.addEventListener('click', () => {
    count = (typeof count === 'number' ? count : 0) + 1;
    emit(count);
  });
  const wrapper = kit.h('div', 'mc-field', node);
  el.replaceChildren(wrapper);
  return {
    set: value => {
      if (typeof value === 'number') {
        count = value;
      }
    },
    setDisabled: d => (node.disabled = d)
  };
};
