/**
 * Styles for the in-frame controls. The frame cannot read JupyterLab's CSS
 * variables (opaque origin), so the page passes the colours it needs.
 */
export interface WidgetColors {
  border: string;
  background: string;
  accent: string;
  muted: string;
}

export function widgetCss(c: WidgetColors): string {
  return `
    .mc-field { display: flex; align-items: center; gap: 8px; margin: 4px 0; flex-wrap: wrap; }
    .mc-label { display: inline-flex; }
    .mc-label > * { margin: 0; }
    .mc-value { font-variant-numeric: tabular-nums; min-width: 2ch; }
    .mc-range { accent-color: ${c.accent}; width: 220px; }
    .mc-range-half { width: 140px; }
    .mc-check, .mc-switch, .mc-radios input, .mc-table input { accent-color: ${c.accent}; }
    .mc-input {
      font: inherit; color: inherit; background: ${c.background};
      border: 1px solid ${c.border}; border-radius: 4px; padding: 3px 6px;
    }
    .mc-input:focus { outline: 1px solid ${c.accent}; border-color: ${c.accent}; }
    .mc-textarea { min-width: 280px; }
    .mc-inline { display: inline-flex; align-items: center; gap: 6px; }
    .mc-radios { display: flex; flex-direction: column; gap: 2px; }
    .mc-inline-group { flex-direction: row; gap: 12px; }
    .mc-switch { appearance: none; width: 30px; height: 16px; border-radius: 8px;
      background: ${c.border}; position: relative; cursor: pointer; margin: 0; }
    .mc-switch::after { content: ""; position: absolute; top: 2px; left: 2px; width: 12px;
      height: 12px; border-radius: 50%; background: white; transition: left .1s; }
    .mc-switch:checked { background: ${c.accent}; }
    .mc-switch:checked::after { left: 16px; }
    .mc-button { font: inherit; color: inherit; background: ${c.background}; cursor: pointer;
      border: 1px solid ${c.border}; border-radius: 4px; padding: 3px 12px; }
    .mc-button > * { margin: 0; }
    .mc-button:hover:not(:disabled) { border-color: ${c.accent}; }
    .mc-button-success, .mc-button-warn, .mc-button-danger { color: white; border: none; }
    .mc-button-success { background: #2e7d32; }
    .mc-button-warn { background: #ed6c02; }
    .mc-button-danger { background: #d32f2f; }
    :disabled { cursor: not-allowed; opacity: .6; }
    .mc-table-scroll { max-height: 400px; overflow: auto; }
    .mc-table { border-collapse: collapse; font-size: 0.95em; }
    .mc-table th, .mc-table td { border-bottom: 1px solid ${c.border}; padding: 2px 8px;
      text-align: left; }
    .mc-table th { position: sticky; top: 0; background: ${c.background}; }
    .mc-note { color: ${c.muted}; font-style: italic; }
  `;
}
