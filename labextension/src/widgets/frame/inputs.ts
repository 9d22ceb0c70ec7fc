/**
 * Controls with one typed value: slider, range slider, number, text, text
 * area, date. Each factory runs inside the sandboxed frame (serialized by
 * ../script.ts): it may use only its parameters and the frame's globals.
 *
 * Values are what marimo's kernel expects from its own frontend
 * (marimo/_plugins/ui/_impl/input.py, dates.py): slider a number (the step
 * value itself when `steps` is given), range slider [lo, hi], number a
 * number or null, text a string, date "YYYY-MM-DD".
 */
import type { ControlFactory } from './types';

export const slider: ControlFactory = (el, kit, emit) => {
  const steps = kit.data<number[]>(el, 'steps', []);
  const byIndex = Array.isArray(steps) && steps.length > 0;
  const input = kit.h('input', 'mc-range');
  input.type = 'range';
  input.min = String(byIndex ? 0 : kit.data(el, 'start', 0));
  input.max = String(byIndex ? steps.length - 1 : kit.data(el, 'stop', 100));
  input.step = byIndex ? '1' : String(kit.data<number | null>(el, 'step', null) ?? 'any');
  const shown = kit.h('span', 'mc-value');
  shown.hidden = !kit.data(el, 'show-value', false);
  const read = () => (byIndex ? steps[Number(input.value)] : Number(input.value));
  const show = (value: unknown) => {
    if (typeof value !== 'number') {
      return;
    }
    input.value = String(byIndex ? Math.max(0, steps.indexOf(value)) : value);
    shown.textContent = String(value);
  };
  show(kit.data(el, 'initial-value', null));
  // Every intermediate position would rerun the dependents: throttle while
  // dragging (or wait for the release when marimo's debounce is set).
  const debounce = kit.data(el, 'debounce', false);
  const send = kit.throttle(emit, 150);
  input.addEventListener('input', () => {
    shown.textContent = String(read());
    if (!debounce) {
      send(read());
    }
  });
  input.addEventListener('change', () => emit(read()));
  kit.mount(el, input, shown);
  return { set: show, setDisabled: d => (input.disabled = d) };
};

export const rangeSlider: ControlFactory = (el, kit, emit) => {
  const steps = kit.data<number[]>(el, 'steps', []);
  const byIndex = Array.isArray(steps) && steps.length > 0;
  const make = () => {
    const input = kit.h('input', 'mc-range mc-range-half');
    input.type = 'range';
    input.min = String(byIndex ? 0 : kit.data(el, 'start', 0));
    input.max = String(byIndex ? steps.length - 1 : kit.data(el, 'stop', 100));
    input.step = byIndex ? '1' : String(kit.data<number | null>(el, 'step', null) ?? 'any');
    return input;
  };
  const lo = make();
  const hi = make();
  lo.setAttribute('aria-label', 'start');
  hi.setAttribute('aria-label', 'end');
  const shown = kit.h('span', 'mc-value');
  shown.hidden = !kit.data(el, 'show-value', false);
  const at = (input: HTMLInputElement) =>
    byIndex ? steps[Number(input.value)] : Number(input.value);
  const read = () => [Math.min(at(lo), at(hi)), Math.max(at(lo), at(hi))];
  const show = (value: unknown) => {
    if (!Array.isArray(value) || value.length !== 2) {
      return;
    }
    const [a, b] = value.map(v => (byIndex ? Math.max(0, steps.indexOf(v)) : v));
    lo.value = String(a);
    hi.value = String(b);
    shown.textContent = `${value[0]} – ${value[1]}`;
  };
  show(kit.data(el, 'initial-value', null));
  const send = kit.throttle(emit, 150);
  for (const input of [lo, hi]) {
    input.addEventListener('input', () => {
      const value = read();
      shown.textContent = `${value[0]} – ${value[1]}`;
      if (!kit.data(el, 'debounce', false)) {
        send(value);
      }
    });
    input.addEventListener('change', () => emit(read()));
  }
  kit.mount(el, lo, hi, shown);
  return {
    set: show,
    setDisabled: d => {
      lo.disabled = d;
      hi.disabled = d;
    }
  };
};

export const number: ControlFactory = (el, kit, emit) => {
  const input = kit.h('input', 'mc-input mc-number');
  input.type = 'number';
  const start = kit.data<number | null>(el, 'start', null);
  const stop = kit.data<number | null>(el, 'stop', null);
  const step = kit.data<number | null>(el, 'step', null);
  if (start !== null) input.min = String(start);
  if (stop !== null) input.max = String(stop);
  input.step = step === null ? 'any' : String(step);
  const show = (value: unknown) => {
    if (typeof value === 'number' || value === null) {
      input.value = value === null ? '' : String(value);
    }
  };
  show(kit.data(el, 'initial-value', null));
  const read = () => (input.value === '' ? null : Number(input.value));
  const send = kit.throttle(emit, 300);
  input.addEventListener('input', () => {
    if (input.checkValidity()) {
      send(read());
    }
  });
  input.addEventListener('change', () => emit(read()));
  kit.mount(el, input);
  return { set: show, setDisabled: d => (input.disabled = d) };
};

/**
 * text and text_area (one factory: the frame gets each factory's own source,
 * so they cannot share a module-level helper). Typing is throttled, leaving
 * the field sends.
 */
export const text: ControlFactory = (el, kit, emit) => {
  let input: HTMLInputElement | HTMLTextAreaElement;
  if (el.localName === 'marimo-text-area') {
    input = kit.h('textarea', 'mc-input mc-textarea');
    input.rows = kit.data(el, 'rows', 4);
  } else {
    input = kit.h('input', 'mc-input');
    const kind = kit.data(el, 'kind', 'text');
    input.type = ['password', 'email', 'url'].includes(kind) ? kind : 'text';
  }
  input.placeholder = kit.data(el, 'placeholder', '');
  const maxLength = kit.data<number | null>(el, 'max-length', null);
  if (maxLength !== null) {
    input.maxLength = maxLength;
  }
  const field = input;
  const show = (value: unknown) => {
    if (typeof value === 'string' && value !== field.value) {
      field.value = value;
    }
  };
  show(kit.data(el, 'initial-value', ''));
  const send = kit.throttle(emit, 400);
  input.addEventListener('input', () => send(field.value));
  input.addEventListener('change', () => emit(field.value));
  kit.mount(el, input);
  return { set: show, setDisabled: d => (field.disabled = d) };
};

export const date: ControlFactory = (el, kit, emit) => {
  const input = kit.h('input', 'mc-input');
  input.type = 'date';
  input.min = kit.data(el, 'start', '');
  input.max = kit.data(el, 'stop', '');
  const show = (value: unknown) => {
    if (typeof value === 'string') {
      input.value = value.slice(0, 10);
    }
  };
  show(kit.data(el, 'initial-value', ''));
  input.addEventListener('change', () => {
    if (input.value) {
      emit(input.value); // marimo parses "%Y-%m-%d"
    }
  });
  kit.mount(el, input);
  return { set: show, setDisabled: d => (input.disabled = d) };
};
