/**
 * The marimo (multiplayer) document: a toolbar with avatars, actions and
 * status, and the notebook's cells, all driven by a NotebookSession.
 */
import { Dialog, InputDialog, showDialog, ToolbarButton } from '@jupyterlab/apputils';
import { Extension } from '@codemirror/state';
import {
  ABCWidgetFactory,
  DocumentRegistry,
  DocumentWidget,
  TextModelFactory
} from '@jupyterlab/docregistry';
import { Contents } from '@jupyterlab/services';
import {
  addIcon,
  fastForwardIcon,
  html5Icon,
  refreshIcon,
  saveIcon,
  shareIcon,
  stopIcon,
  Toolbar
} from '@jupyterlab/ui-components';
import { ISignal, Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

import { NotebookConnection, socketUrl } from './connection';
import { marimoCollabIcon } from './icon';
import { isMarimoNotebook } from './notebookfile';
import { AvatarBar } from './presence';
import { NotebookSession } from './session';
import { LayoutEntry } from './widgets/bridge';
import { shareWithUser } from './sharing';
import { NotebookStatus, StatusLine } from './status';

export const FACTORY_NAME = 'marimo (multiplayer)';
export const MODEL_NAME = 'marimo-collab-text';

/**
 * A text model factory of its own, so our documents get their own context:
 * that context only reads the file once (to tell marimo notebooks from plain
 * Python); it never writes, since the server owns saving.
 */
export class ServerOwnedModelFactory extends TextModelFactory {
  override get name(): string {
    return MODEL_NAME;
  }
}

/** The cells, in a scrolling column. */
export class NotebookPanel extends Widget {
  constructor(readonly session: NotebookSession) {
    super();
    this.addClass('jp-MarimoCollab');
    this.node.tabIndex = -1;
    this.node.dataset.view = 'notebook';
    this._problem = document.createElement('div');
    this._problem.className = 'jp-MarimoCollab-problem';
    this._problem.hidden = true;
    this._cells = document.createElement('div');
    this._cells.className = 'jp-MarimoCollab-cells';
    this._addButton = document.createElement('button');
    this._addButton.className = 'jp-MarimoCollab-addCell jp-Button jp-mod-styled';
    this._addButton.textContent = '+ Add cell';
    this._addButton.dataset.action = 'add-cell';
    this._addButton.onclick = () => void session.addCellAtEnd();
    // The output frame lies under the cells; each cell's output slot lets the
    // pointer through to the frame's box for it (docs/widgets.md, "Layout").
    const body = document.createElement('div');
    body.className = 'jp-MarimoCollab-body';
    this._frame = session.outputFrame.node;
    body.append(this._frame, this._cells);
    this.node.append(this._problem, body, this._addButton);
    session.layoutChanged.connect(this._arrange, this);
    session.statusChanged.connect((_, status) => this._onStatus(status), this);
    session.outputFrame.sizesChanged.connect((_, sizes) => this._onOutputSizes(sizes), this);
    this._resizes.observe(this._cells);
  }

  /** `app`: outputs only, as in `marimo run`; `notebook`: code, outputs and consoles. */
  get view(): 'app' | 'notebook' {
    return this._view;
  }

  get viewChanged(): ISignal<this, void> {
    return this._viewChanged;
  }

  /** Each person's own choice; until they choose, viewers get the app view. */
  setView(view: 'app' | 'notebook', chosen = false): void {
    this._viewChosen ||= chosen;
    if (view !== this._view) {
      this._view = view;
      this.node.dataset.view = view;
      this.toggleClass('jp-mod-appView', view === 'app');
      this._viewChanged.emit();
      this._scheduleLayout();
    }
  }

  override dispose(): void {
    this._resizes.disconnect();
    cancelAnimationFrame(this._layoutRequest);
    this.session.dispose();
    super.dispose();
  }

  /** marimo rendered outputs at these heights: the slots follow, the layout moves. */
  private _onOutputSizes(sizes: Map<string, number>): void {
    for (const view of this.session.cells) {
      const height = sizes.get(view.cellId);
      if (height !== undefined) {
        view.outputs.setHeight(height);
      }
    }
    this._scheduleLayout();
  }

  private _scheduleLayout(): void {
    if (!this._layoutRequest) {
      this._layoutRequest = requestAnimationFrame(() => {
        this._layoutRequest = 0;
        this._placeOutputs();
      });
    }
  }

  /** Tell the frame where each cell's slot is; size the frame to the cells. */
  private _placeOutputs(): void {
    const origin = this._cells.getBoundingClientRect();
    const views = this.session.cells;
    const entries: LayoutEntry[] = views.map(view => {
      const slot = view.outputs.slot.getBoundingClientRect();
      return [view.cellId, Math.round(slot.top - origin.top), slot.width > 0];
    });
    const width = views.length ? views[0].outputs.slot.clientWidth : this._cells.clientWidth;
    this._frame.style.height = `${Math.ceil(origin.height)}px`;
    this.session.outputFrame.layout(entries, width);
  }

  /** Mirror the session's cell order in the DOM, moving nodes, not rebuilding them. */
  private _arrange(): void {
    const views = this.session.cells;
    views.forEach((view, index) => {
      view.setName(this.session.cellName(view.cellId), index + 1);
      view.setCodeHidden(this.session.codeHidden(view.cellId));
      this._resizes.observe(view.node);
      if (this._cells.children[index] !== view.node) {
        this._cells.insertBefore(view.node, this._cells.children[index] ?? null);
      }
    });
    while (this._cells.children.length > views.length) {
      this._cells.lastElementChild!.remove();
    }
    this._scheduleLayout();
  }

  private _onStatus(status: NotebookStatus): void {
    this._problem.hidden = !status.problem;
    this._problem.textContent = status.problem;
    this._problem.dataset.problem = status.problem;
    const canEdit = status.role === 'editor' || status.role === 'runner';
    this._addButton.hidden = !canEdit;
    if (!this._viewChosen && status.role) {
      this.setView(status.role === 'viewer' ? 'app' : 'notebook');
    }
  }

  private _problem: HTMLElement;
  private _cells: HTMLElement;
  private _frame: HTMLIFrameElement;
  private _addButton: HTMLButtonElement;
  private _layoutRequest = 0;
  private _view: 'app' | 'notebook' = 'notebook';
  private _viewChosen = false;
  private _viewChanged = new Signal<this, void>(this);
  private _resizes = new ResizeObserver(() => this._scheduleLayout());
}

export class MarimoDocument extends DocumentWidget<NotebookPanel> {}

export interface FactoryOptions extends DocumentRegistry.IWidgetFactoryOptions<MarimoDocument> {
  contents: Contents.IManager;
  theme: () => Extension;
  language: () => Promise<Extension>;
  /** Open a file that is not a marimo notebook in the text editor instead. */
  openAsText(path: string, instead: MarimoDocument): void;
}

export class MarimoWidgetFactory extends ABCWidgetFactory<MarimoDocument> {
  constructor(private readonly _opts: FactoryOptions) {
    super(_opts);
  }

  protected createNewWidget(context: DocumentRegistry.Context): MarimoDocument {
    const path = this._opts.contents.localPath(context.path);
    const connection = new NotebookConnection(socketUrl(path));
    const session = new NotebookSession({
      path,
      connection,
      theme: this._opts.theme(),
      askName: async current => {
        const result = await InputDialog.getText({
          title: 'Rename cell',
          label: 'Cell name (a Python identifier; "_" for none)',
          text: current
        });
        return result.button.accept ? (result.value ?? '') : null;
      },
      confirmDelete: async label => {
        const result = await showDialog({
          title: 'Delete cell',
          body: `Delete ${label} for everyone in this notebook?`,
          buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Delete' })]
        });
        return result.button.accept;
      }
    });
    const content = new NotebookPanel(session);
    // Reveal only once we know the file is a marimo notebook; plain Python
    // goes to the text editor before anything but a spinner is shown.
    let widget: MarimoDocument;
    const reveal = Promise.all([context.ready, this._opts.language()]).then(
      ([, language]) => {
        if (!isMarimoNotebook(context.model.toString())) {
          this._opts.openAsText(context.path, widget);
          return new Promise<void>(() => undefined); // disposed: never reveal
        }
        session.setLanguage(language);
        connection.start();
        return Promise.resolve();
      }
    );
    widget = new MarimoDocument({ context, content, reveal });
    widget.addClass('jp-MarimoCollabDocument');
    widget.title.icon = marimoCollabIcon;
    preventClientSaves(context, session);
    markUnsentAsDirty(context, session);
    populateToolbar(widget.toolbar, content, path);
    return widget;
  }
}

/**
 * JupyterLab's Save (menu, toolbar, autosave) would write the context's copy
 * of the file: route it to the server instead, which writes marimo's format.
 */
function preventClientSaves(context: DocumentRegistry.Context, session: NotebookSession): void {
  Object.assign(context, {
    save: () => session.save(),
    saveAs: async () => {
      await showDialog({
        title: 'Save As is not available',
        body: 'This notebook is saved by the server for everyone. Copy the file in the file browser instead.',
        buttons: [Dialog.okButton()]
      });
    }
  });
}

/**
 * Edits the server has not confirmed make the document "dirty": JupyterLab
 * then marks the tab and asks before the tab or the page is closed. Only
 * edits pending for a while count, so the mark does not flicker as you type.
 */
function markUnsentAsDirty(context: DocumentRegistry.Context, session: NotebookSession): void {
  let timer = 0;
  const set = (dirty: boolean) => {
    if (!context.isDisposed && context.model.dirty !== dirty) {
      context.model.dirty = dirty;
    }
  };
  session.statusChanged.connect((_, status) => {
    if (status.unsent === 0) {
      window.clearTimeout(timer);
      timer = 0;
      set(false);
    } else if (!timer && !context.model.dirty) {
      timer = window.setTimeout(() => {
        timer = 0;
        set(session.status.unsent > 0);
      }, 1000);
    }
  });
}

function populateToolbar(toolbar: Toolbar, content: NotebookPanel, path: string): void {
  const session = content.session;
  const avatars = new AvatarBar(session.presence);
  const add = new ToolbarButton({
    icon: addIcon,
    tooltip: 'Add a cell below the current one',
    onClick: () => void session.addCell()
  });
  const runAll = new ToolbarButton({
    icon: fastForwardIcon,
    tooltip: 'Run all cells (cells whose output is current are skipped, as in marimo)',
    onClick: () => session.runAll()
  });
  const interrupt = new ToolbarButton({
    icon: stopIcon,
    tooltip: 'Interrupt the kernel',
    onClick: () => void session.interrupt()
  });
  const restart = new ToolbarButton({
    icon: refreshIcon,
    tooltip: 'Restart the kernel (for everyone; outputs are cleared)',
    onClick: () => void session.restartKernel()
  });
  const save = new ToolbarButton({
    icon: saveIcon,
    tooltip: 'Save (the server writes the file for everyone)',
    onClick: () => void session.save()
  });
  const share = new ToolbarButton({
    icon: shareIcon,
    tooltip: 'Share with a JupyterHub user',
    onClick: () => void shareWithUser(path)
  });
  const view = new ToolbarButton({
    icon: html5Icon,
    label: 'App view',
    tooltip: 'Switch between the app view (outputs only) and the notebook view, for you alone',
    onClick: () => content.setView(content.view === 'app' ? 'notebook' : 'app', true)
  });
  content.viewChanged.connect(() => {
    view.node.dataset.view = content.view;
    view.node.querySelector('.jp-ToolbarButtonComponent-label')!.textContent =
      content.view === 'app' ? 'Notebook view' : 'App view';
  });
  const status = new StatusLine();
  toolbar.addItem('avatars', avatars);
  toolbar.addItem('add-cell', add);
  toolbar.addItem('run-all', runAll);
  toolbar.addItem('interrupt', interrupt);
  toolbar.addItem('restart-kernel', restart);
  toolbar.addItem('save', save);
  toolbar.addItem('share', share);
  toolbar.addItem('view', view);
  toolbar.addItem('spacer', Toolbar.createSpacerItem());
  toolbar.addItem('status', status);
  const update = (current: NotebookStatus) => {
    status.render(current);
    const canEdit = current.role === 'editor' || current.role === 'runner';
    add.setHidden(!canEdit);
    save.setHidden(!canEdit);
    runAll.setHidden(current.role !== 'runner');
    interrupt.setHidden(current.role !== 'runner');
    restart.setHidden(current.role !== 'runner');
  };
  session.statusChanged.connect((_, current) => update(current));
  update(session.status);
}
