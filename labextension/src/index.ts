/**
 * marimo-collab: open marimo notebooks in JupyterLab as a multiplayer
 * document, edited, run and watched together through the server extension.
 */
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, IThemeManager, WidgetTracker } from '@jupyterlab/apputils';
import {
  IEditorLanguageRegistry,
  IEditorThemeRegistry,
  jupyterTheme
} from '@jupyterlab/codemirror';
import { PageConfig } from '@jupyterlab/coreutils';
import { IDocumentManager } from '@jupyterlab/docmanager';
import { IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import { ILauncher } from '@jupyterlab/launcher';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { Extension } from '@codemirror/state';

import { marimoCollabIcon, marimoCollabIconUrl } from './icon';
import { NEW_NOTEBOOK } from './notebookfile';
import {
  FACTORY_NAME,
  MarimoDocument,
  MarimoWidgetFactory,
  MODEL_NAME,
  ServerOwnedModelFactory
} from './widget';

const PLUGIN_ID = 'marimo-collab:plugin';

namespace CommandIDs {
  export const newNotebook = 'marimo-collab:new-notebook';
  export const open = 'marimo-collab:open';
  export const save = 'marimo-collab:save';
  export const runAll = 'marimo-collab:run-all';
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'Real-time multiplayer for marimo notebooks.',
  autoStart: true,
  requires: [IDocumentManager, IEditorLanguageRegistry],
  optional: [
    IEditorThemeRegistry,
    ISettingRegistry,
    ILauncher,
    IDefaultFileBrowser,
    ICommandPalette,
    ILayoutRestorer,
    IThemeManager
  ],
  activate: async (
    app: JupyterFrontEnd,
    docManager: IDocumentManager,
    languages: IEditorLanguageRegistry,
    themes: IEditorThemeRegistry | null,
    settings: ISettingRegistry | null,
    launcher: ILauncher | null,
    browser: IDefaultFileBrowser | null,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null,
    themeManager: IThemeManager | null
  ) => {
    // Read before JupyterLab's router rewrites the address bar.
    const requestedFactory = new URLSearchParams(window.location.search).get('factory');
    const { commands, docRegistry } = app;
    const contents = app.serviceManager.contents;

    let python: Promise<Extension> | null = null;
    const loadPython = () =>
      (python ??= languages
        .getLanguage('python')
        .then(language => language?.support ?? [])
        .catch(() => []));

    // marimo notebooks open here by default; other .py files are handed on
    // to the text editor once their content has been checked. This is the
    // factory's `defaultFor` (docmanager resets setDefaultWidgetFactory
    // overrides whenever its own settings load), so a change applies on reload.
    let openByDefault = true;
    if (settings) {
      try {
        const loaded = await settings.load(PLUGIN_ID);
        openByDefault = loaded.get('openMarimoNotebooksByDefault').composite !== false;
      } catch (reason) {
        console.warn('marimo-collab: settings not loaded', reason);
      }
    }

    docRegistry.addModelFactory(new ServerOwnedModelFactory());
    const factory = new MarimoWidgetFactory({
      name: FACTORY_NAME,
      label: 'marimo (multiplayer)',
      modelName: MODEL_NAME,
      fileTypes: ['python'],
      defaultFor: openByDefault ? ['python'] : [],
      contents,
      theme: () => themes?.defaultTheme() ?? jupyterTheme,
      language: loadPython,
      openAsText: (path, instead) => {
        void docManager
          .openOrReveal(path, 'Editor', undefined, { ref: instead.id, mode: 'tab-after' })
          ?.revealed.then(() => instead.dispose());
      }
    });
    docRegistry.addWidgetFactory(factory);

    const tracker = new WidgetTracker<MarimoDocument>({ namespace: 'marimo-collab' });
    factory.widgetCreated.connect((_, widget) => {
      widget.context.pathChanged.connect(() => void tracker.save(widget));
      void tracker.add(widget);
    });
    if (restorer) {
      void restorer.restore(tracker, {
        command: 'docmanager:open',
        args: widget => ({ path: widget.context.path, factory: FACTORY_NAME }),
        name: widget => widget.context.path
      });
    }

    // marimo's app in the output frame takes its theme when it starts: reload
    // it (when light/dark changed) once the new theme's stylesheet is in place.
    themeManager?.themeChanged.connect(() =>
      window.setTimeout(
        () => tracker.forEach(widget => widget.content.session.themeChanged()),
        300
      )
    );

    const current = () => {
      const widget = tracker.currentWidget;
      return widget && widget === app.shell.currentWidget ? widget : null;
    };

    commands.addCommand(CommandIDs.newNotebook, {
      label: args =>
        args.isLauncher ? 'marimo (multiplayer)' : 'New marimo Notebook (multiplayer)',
      caption: 'Create a marimo notebook that several people can edit and run together',
      icon: args => (args.isPalette ? undefined : marimoCollabIcon),
      execute: async args => {
        const cwd = (args.cwd as string) ?? browser?.model.path ?? '';
        const model = await contents.newUntitled({ path: cwd, type: 'file', ext: '.py' });
        // A brand-new file: writing its first content is not saving a
        // client copy of a shared notebook (nobody has it open yet).
        await contents.save(model.path, {
          type: 'file',
          format: 'text',
          content: NEW_NOTEBOOK
        });
        return commands.execute('docmanager:open', { path: model.path, factory: FACTORY_NAME });
      }
    });

    commands.addCommand(CommandIDs.open, {
      label: 'Open with marimo (multiplayer)',
      execute: args =>
        commands.execute('docmanager:open', { path: args.path as string, factory: FACTORY_NAME })
    });

    commands.addCommand(CommandIDs.save, {
      label: 'Save marimo notebook (on the server)',
      isEnabled: () => !!current(),
      execute: () => current()?.content.session.save()
    });
    // Takes precedence over docmanager:save inside our documents (closer selector).
    commands.addKeyBinding({
      command: CommandIDs.save,
      keys: ['Accel S'],
      selector: '.jp-MarimoCollabDocument'
    });

    commands.addCommand(CommandIDs.runAll, {
      label: 'Run all marimo cells',
      isEnabled: () => current()?.content.session.role === 'runner',
      execute: () => current()?.content.session.runAll()
    });

    launcher?.add({
      command: CommandIDs.newNotebook,
      args: { isLauncher: true },
      category: 'Notebook',
      rank: 50,
      kernelIconUrl: marimoCollabIconUrl
    });
    palette?.addItem({ command: CommandIDs.newNotebook, category: 'marimo' });
    palette?.addItem({ command: CommandIDs.runAll, category: 'marimo' });

    // /lab/tree/<path>?factory=marimo%20(multiplayer) opens the notebook here
    // whatever the default for .py files is.
    if (requestedFactory === FACTORY_NAME) {
      const treePath = PageConfig.getOption('treePath');
      if (treePath) {
        void app.restored.then(() =>
          commands.execute('docmanager:open', { path: treePath, factory: FACTORY_NAME })
        );
      }
    }
  }
};

export default plugin;
