/**
 * One cell's box in the notebook: a header with its name and actions, the
 * collaborative editor, and the output area.
 */
import {
  codeIcon,
  deleteIcon,
  editIcon,
  historyIcon,
  LabIcon,
  moveDownIcon,
  moveUpIcon,
  runIcon
} from '@jupyterlab/ui-components';

import { CellEditor } from './cells';
import { CellOutputArea } from './outputs';
import { Role, Suggestion } from './protocol';
import { renderHistory, renderSuggestions, ReviewActions } from './review';
import { OutputFrame } from './widgets/bridge';

/** What the cell's buttons and keys ask the notebook to do. */
export interface CellActions extends ReviewActions {
  run(cellId: string, advance: boolean): void;
  move(cellId: string, direction: -1 | 1): void;
  remove(cellId: string): void;
  rename(cellId: string): void;
  /** Set marimo's `hide_code` for everyone (a cell-config edit). */
  setHideCode(cellId: string, hidden: boolean): void;
  /** Focus the neighbouring cell's box (command mode) or editor. */
  select(cellId: string, direction: -1 | 1): void;
}

export class CellView {
  readonly node: HTMLElement;
  readonly outputs: CellOutputArea;

  constructor(
    readonly editor: CellEditor,
    private readonly _actions: CellActions,
    frame: OutputFrame
  ) {
    const id = editor.cellId;
    this.outputs = new CellOutputArea(id, frame);
    this.node = document.createElement('div');
    this.node.className = 'jp-MarimoCollab-cell';
    this.node.dataset.cellId = id;
    // Focusable itself so Escape leaves the editor but stays on the cell.
    this.node.tabIndex = -1;
    this.node.addEventListener('keydown', event => this._onKeydown(event));

    const header = document.createElement('div');
    header.className = 'jp-MarimoCollab-cellHeader';
    this._name = document.createElement('span');
    this._name.className = 'jp-MarimoCollab-cellName';
    this._run = this._button(runIcon, 'Run this cell (Shift+Enter)', 'run', () =>
      _actions.run(id, false)
    );
    this._editButtons = [
      this._button(editIcon, 'Rename this cell', 'rename', () => _actions.rename(id)),
      this._button(moveUpIcon, 'Move up', 'move-up', () => _actions.move(id, -1)),
      this._button(moveDownIcon, 'Move down', 'move-down', () => _actions.move(id, 1)),
      this._button(deleteIcon, 'Delete this cell', 'delete', () => _actions.remove(id))
    ];
    const spacer = document.createElement('span');
    spacer.className = 'jp-MarimoCollab-spacer';
    this._showCode = this._button(codeIcon, 'Show or hide the code', 'toggle-code', () =>
      this._onToggleCode()
    );
    const history = this._button(historyIcon, 'History of this cell', 'history', () =>
      this._toggleHistory()
    );
    header.append(
      this._name,
      spacer,
      this._showCode,
      history,
      this._run,
      ...this._editButtons
    );
    this._suggestions = document.createElement('div');
    this._suggestions.className = 'jp-MarimoCollab-suggestions';
    this._suggestions.hidden = true;
    this._history = document.createElement('div');
    this._history.className = 'jp-MarimoCollab-history';
    this._history.hidden = true;

    const body = document.createElement('div');
    body.className = 'jp-MarimoCollab-cellEditor';
    body.appendChild(editor.view.dom);
    // As in marimo: the output above the code, the console below it.
    this.node.append(
      this.outputs.node,
      header,
      body,
      this._suggestions,
      this._history,
      this.outputs.console
    );

    this._render();
    editor.view.contentDOM.addEventListener('focus', () =>
      this.node.classList.add('jp-mod-editing')
    );
    editor.view.contentDOM.addEventListener('blur', () =>
      this.node.classList.remove('jp-mod-editing')
    );
  }

  get cellId(): string {
    return this.editor.cellId;
  }

  setName(name: string, position: number): void {
    // marimo's "_" means unnamed: show the position instead.
    this._name.textContent = name && name !== '_' ? name : `[${position}]`;
    this._name.title = name && name !== '_' ? `Cell ${name}` : 'Unnamed cell';
  }

  /** Viewers read; editors edit but do not run; runners do both. */
  setRole(role: Role | null): void {
    const canEdit = role === 'editor' || role === 'runner';
    this._canEdit = canEdit;
    this._render();
    this._run.hidden = role !== 'runner';
    this._editButtons.forEach(button => (button.hidden = !canEdit));
    this.setSuggestions(this._shown);
    if (this.editor.editable !== canEdit) {
      this.editor.setEditable(canEdit);
    }
  }

  /** The pending suggestions shown under this cell (Accept / Reject for editors). */
  setSuggestions(suggestions: Suggestion[]): void {
    this._shown = suggestions;
    renderSuggestions(
      this._suggestions,
      suggestions,
      this._canEdit,
      this._actions,
      this.editor.text
    );
  }

  /** Open or close the history panel; an open one reloads after every change. */
  private _toggleHistory(): void {
    this._history.hidden = !this._history.hidden;
    if (!this._history.hidden) {
      this.refreshHistory();
    }
  }

  /** The cell's text changed: its suggestions' context and an open history panel. */
  refreshReview(): void {
    if (this._shown.length) {
      this.setSuggestions(this._shown);
    }
    this.refreshHistory();
  }

  refreshHistory(): void {
    if (!this._history.hidden) {
      void renderHistory(this._history, this.cellId, this._canEdit, this._actions);
    }
  }

  /**
   * Why the code starts collapsed: `config` (marimo's `hide_code`, shared by
   * everyone), `markdown` (a markdown cell, as marimo shows it), or null.
   */
  setCodeHidden(reason: 'config' | 'markdown' | null): void {
    if (reason !== this._hiddenBy) {
      this._hiddenBy = reason;
      this._codeShown = false;
      this._render();
    }
  }

  /**
   * The `</>` button. Editors and runners change `hide_code` for everyone, as
   * in marimo; a markdown cell's code, and anything a viewer opens, opens for
   * that person alone.
   */
  private _onToggleCode(): void {
    const collapsed = this._hiddenBy !== null && !this._codeShown;
    if (this._canEdit && (!collapsed || this._hiddenBy === 'config')) {
      this._actions.setHideCode(this.cellId, !collapsed);
      return;
    }
    this._showCodeHere(collapsed);
  }

  private _showCodeHere(show: boolean): void {
    this._codeShown = show;
    this._render();
    if (show) {
      this.editor.focus();
    }
  }

  private _render(): void {
    const collapsed = this._hiddenBy !== null && !this._codeShown;
    this.node.classList.toggle('jp-mod-codeHidden', collapsed);
    this.node.dataset.codeHidden = String(collapsed);
    this._showCode.hidden = !this._canEdit && this._hiddenBy === null;
    this._showCode.title = collapsed ? 'Show the code' : 'Hide the code';
  }

  setActive(active: boolean): void {
    this.node.classList.toggle('jp-mod-active', active);
  }

  dispose(): void {
    this.editor.destroy();
    this.node.remove();
  }

  /** Command-mode keys, when the cell box (not its editor) has focus. */
  private _onKeydown(event: KeyboardEvent): void {
    if (event.target !== this.node) {
      return; // keys typed in the editor are the editor's
    }
    const id = this.cellId;
    let handled = true;
    if (event.key === 'Enter' && event.shiftKey) {
      this._actions.run(id, true);
    } else if (event.key === 'Enter') {
      if (this._hiddenBy !== null && !this._codeShown) {
        this._showCodeHere(true); // to edit it: for this person alone
      }
      this.editor.focus();
    } else if (event.key === 'ArrowUp' || event.key === 'k') {
      this._actions.select(id, -1);
    } else if (event.key === 'ArrowDown' || event.key === 'j') {
      this._actions.select(id, 1);
    } else {
      handled = false;
    }
    if (handled) {
      event.preventDefault();
      event.stopPropagation();
    }
  }

  private _button(
    icon: LabIcon,
    title: string,
    action: string,
    onClick: () => void
  ): HTMLButtonElement {
    const button = document.createElement('button');
    button.className = 'jp-MarimoCollab-cellButton jp-Button jp-mod-minimal';
    button.title = title;
    button.setAttribute('aria-label', title);
    button.dataset.action = action;
    icon.element({ container: button, elementSize: 'normal' });
    button.addEventListener('click', event => {
      event.stopPropagation();
      onClick();
    });
    return button;
  }

  private _name: HTMLElement;
  private _suggestions: HTMLElement;
  private _history: HTMLElement;
  private _shown: Suggestion[] = [];
  private _run: HTMLButtonElement;
  private _editButtons: HTMLButtonElement[];
  private _showCode: HTMLButtonElement;
  private _hiddenBy: 'config' | 'markdown' | null = null;
  private _codeShown = false;
  private _canEdit = false;
}
