/**
 * The widget runtime's entry point inside a sandboxed output frame
 * (serialized by ../script.ts: only its parameters and the frame's globals).
 *
 * Upgrades each `<marimo-ui-element object-id=..><marimo-x data-..>` into a
 * native control, posts the user's changes to the page, and follows the
 * values and read-only state the page sends. Only messages from the parent
 * window are obeyed; the page in turn checks everything this frame sends.
 */
import type { FrameConfig } from '../protocol';
import type { Control, ControlFactory, Kit } from './types';

interface Entry {
  control: Control;
  /** JSON of the value shown: no echo of a value we were just given. */
  shown: string;
  fixed: boolean;
}

export function boot(
  config: FrameConfig,
  kit: Kit,
  factories: Record<string, ControlFactory>
): void {
  const { messages } = config;
  let readOnly = config.readOnly;
  const entries = new Map<string, Entry[]>();

  for (const host of Array.from(document.querySelectorAll('marimo-ui-element'))) {
    const objectId = host.getAttribute('object-id');
    const el = host.firstElementChild;
    if (!objectId || !(el instanceof HTMLElement)) {
      continue;
    }
    // A child of a composite element (array, dictionary, form) has no value
    // of its own in the kernel: the composite does, and it is not supported.
    if (host.parentElement?.closest('marimo-ui-element')) {
      continue;
    }
    const factory = factories[el.localName];
    if (!factory) {
      el.classList.add('mc-unsupported');
      if (!el.textContent?.trim() && !el.querySelector('img, svg, canvas')) {
        el.append(kit.h('div', 'mc-note', `${el.localName} is not interactive in the multiplayer view.`));
      }
      continue;
    }
    const copies = entries.get(objectId) ?? [];
    entries.set(objectId, copies);
    const entry: Entry = {
      control: { set: () => undefined, setDisabled: () => undefined },
      shown: JSON.stringify(kit.data(el, 'initial-value', null)),
      fixed: kit.disabledByKernel(el)
    };
    const emit = (value: unknown) => {
      const json = JSON.stringify(value);
      if (readOnly || json === entry.shown) {
        return;
      }
      // The same element shown twice in this output: the copies follow.
      for (const copy of entries.get(objectId) ?? []) {
        copy.shown = json;
        if (copy !== entry) {
          copy.control.set(value);
        }
      }
      parent.postMessage({ type: messages.setUiValue, objectId, value }, '*');
    };
    try {
      entry.control = factory(el, kit, emit);
    } catch (error) {
      console.warn(`marimo-collab: cannot show ${el.localName}`, error);
      continue;
    }
    entry.control.setDisabled(readOnly || entry.fixed);
    el.classList.add('mc-upgraded');
    copies.push(entry);
  }

  window.addEventListener('message', (event: MessageEvent) => {
    if (event.source !== parent) {
      return; // only the page may set values here
    }
    const data: unknown = event.data;
    if (typeof data !== 'object' || data === null) {
      return;
    }
    const message = data as { type?: unknown; objectId?: unknown; value?: unknown; readOnly?: unknown };
    if (message.type === messages.uiValue && typeof message.objectId === 'string') {
      for (const entry of entries.get(message.objectId) ?? []) {
        entry.shown = JSON.stringify(message.value);
        entry.control.set(message.value);
      }
    } else if (message.type === messages.readOnly && typeof message.readOnly === 'boolean') {
      readOnly = message.readOnly;
      entries.forEach(copies =>
        copies.forEach(entry => entry.control.setDisabled(readOnly || entry.fixed))
      );
    }
  });
  document.body.dataset.widgets = String(entries.size);
  parent.postMessage({ type: messages.ready }, '*');
}
