/**
 * Types shared by the code that runs inside output frames. Type-only: the
 * frame functions are serialized with Function.prototype.toString (see
 * ../script.ts), so they may share types but never values.
 */

/** One upgraded marimo UI element. */
export interface Control {
  /** Show a value set elsewhere, without reporting it back. */
  set(value: unknown): void;
  setDisabled(disabled: boolean): void;
}

/** Report the user's new value for this element to the page. */
export type Emit = (value: unknown) => void;

/** Helpers every control uses (built by makeKit inside the frame). */
export interface Kit {
  /** A JSON-encoded `data-<name>` attribute, or `fallback` when absent or invalid. */
  data<T>(el: Element, name: string, fallback: T): T;
  /** An element with a class and children. */
  h<K extends keyof HTMLElementTagNameMap>(
    tag: K,
    className: string,
    ...children: (Node | string)[]
  ): HTMLElementTagNameMap[K];
  /**
   * Replace the marimo element's content with its label (marimo sends it as
   * HTML) and the given controls; returns the wrapper.
   */
  mount(el: HTMLElement, ...controls: Node[]): HTMLElement;
  /** Call at most once per `ms`, always ending with the last call. */
  throttle<A extends unknown[]>(fn: (...args: A) => void, ms: number): (...args: A) => void;
  /** Whether the element itself says disabled (`data-disabled`). */
  disabledByKernel(el: Element): boolean;
}

export type ControlFactory = (el: HTMLElement, kit: Kit, emit: Emit) => Control;
