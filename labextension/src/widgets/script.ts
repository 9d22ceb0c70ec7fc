/**
 * The widget runtime as the text of a <script> for an output frame's srcdoc.
 *
 * Why serialize functions instead of loading a bundle: the frame has an
 * opaque origin and no network access worth trusting, and srcdoc keeps each
 * output self-contained. The frame functions (./frame/*) are written to be
 * self-contained (they use only their parameters and the frame's globals),
 * so their source text works unchanged in the frame, minified or not.
 */
import { boot } from './frame/boot';
import { checkbox, button } from './frame/toggles';
import { dropdown, multiselect, radio } from './frame/choices';
import { date, number, rangeSlider, slider, text } from './frame/inputs';
import { makeKit } from './frame/kit';
import { table } from './frame/table';
import type { ControlFactory } from './frame/types';
import { FrameConfig } from './protocol';

/** marimo's custom element tag → our control. */
export const CONTROLS: Readonly<Record<string, ControlFactory>> = {
  'marimo-slider': slider,
  'marimo-range-slider': rangeSlider,
  'marimo-number': number,
  'marimo-text': text,
  'marimo-text-area': text,
  'marimo-date': date,
  'marimo-checkbox': checkbox,
  'marimo-switch': checkbox,
  'marimo-button': button,
  'marimo-dropdown': dropdown,
  'marimo-radio': radio,
  'marimo-multiselect': multiselect,
  'marimo-table': table
};

let library: string | null = null;

/** The functions' source, built once per page. */
function librarySource(): string {
  if (library === null) {
    const factories = Object.entries(CONTROLS)
      .map(([tag, factory]) => `${JSON.stringify(tag)}: (${factory.toString()})`)
      .join(',\n');
    library = `var boot = (${boot.toString()});\nvar makeKit = (${makeKit.toString()});\nvar factories = {${factories}};`;
  }
  return library;
}

/** JSON that cannot close the surrounding <script>. */
function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/</g, '\\u003c');
}

export function widgetScript(config: FrameConfig): string {
  // An IIFE keeps the runtime's names out of the output's own global scope.
  return `(function () {\n${librarySource()}\nboot(${scriptJson(config)}, makeKit(), factories);\n})();`;
}
