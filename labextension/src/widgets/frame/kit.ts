/**
 * Helpers for the in-frame controls. makeKit runs inside the sandboxed frame
 * (serialized by ../script.ts), so it must not reference anything outside
 * its own body.
 */
import type { Kit } from './types';

export function makeKit(): Kit {
  return {
    data<T>(el: Element, name: string, fallback: T): T {
      // marimo JSON-encodes every data-* attribute (strings carry quotes).
      const raw = el.getAttribute(`data-${name}`);
      if (raw === null) {
        return fallback;
      }
      try {
        const value: unknown = JSON.parse(raw);
        return value === undefined ? fallback : (value as T);
      } catch {
        return fallback;
      }
    },

    h<K extends keyof HTMLElementTagNameMap>(
      tag: K,
      className: string,
      ...children: (Node | string)[]
    ): HTMLElementTagNameMap[K] {
      const node = document.createElement(tag);
      node.className = className;
      node.append(...children);
      return node;
    },

    mount(el: HTMLElement, ...controls: Node[]): HTMLElement {
      const wrapper = document.createElement('div');
      wrapper.className = 'mc-field';
      let label: unknown = null;
      try {
        label = JSON.parse(el.getAttribute('data-label') ?? 'null');
      } catch {
        label = null; // a label we cannot read is no reason to lose the control
      }
      if (typeof label === 'string' && label.trim()) {
        const span = document.createElement('span');
        span.className = 'mc-label';
        // Label HTML is output HTML like the rest of this frame (already sandboxed).
        span.innerHTML = label;
        span.id = `mc-label-${Math.random().toString(36).slice(2)}`;
        wrapper.append(span);
        // Name each control after the label (screen readers, getByLabel).
        const name = span.textContent?.trim() ?? '';
        for (const control of controls) {
          const fields =
            control instanceof Element
              ? [control, ...Array.from(control.querySelectorAll('*'))]
              : [];
          fields
            .filter(f => f.matches('input, select, textarea'))
            .forEach(f => {
              const own = f.getAttribute('aria-label');
              if (own) {
                f.setAttribute('aria-label', `${name} ${own}`);
              } else if (!f.closest('label')) {
                f.setAttribute('aria-labelledby', span.id);
              }
            });
        }
      }
      wrapper.append(...controls);
      el.replaceChildren(wrapper);
      return wrapper;
    },

    throttle<A extends unknown[]>(fn: (...args: A) => void, ms: number) {
      let last = 0;
      let timer = 0;
      let pending: A | null = null;
      return (...args: A) => {
        pending = args;
        const wait = last + ms - Date.now();
        if (wait <= 0) {
          last = Date.now();
          pending = null;
          fn(...args);
        } else if (!timer) {
          timer = window.setTimeout(() => {
            timer = 0;
            last = Date.now();
            if (pending) {
              const next = pending;
              pending = null;
              fn(...next);
            }
          }, wait);
        }
      };
    },

    disabledByKernel(el: Element): boolean {
      return el.getAttribute('data-disabled') === 'true';
    }
  };
}
